"""``hf-scratch tokenizer train`` / ``encode``, through the argparse hook the main CLI mounts."""

import contextlib
import io

import pytest
from transformers import AutoTokenizer

from hf_scratch.cli import main
from hf_scratch.tokenizers import BPETokenizer


def run(argv):
    """Run ``hf-scratch ARGV`` in-process: (exit status, what it printed to stderr)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = main(argv)
    return status, stderr.getvalue()


def test_train_then_encode(tmp_path, data_dir, capsys):
    out = tmp_path / "tok"
    corpus = data_dir / "the-verdict" / "the-verdict.txt"
    assert run(["tokenizer", "train", str(corpus), "--vocab-size", "400", "--out", str(out)]) == (0, "")
    assert "trained 400 tokens" in capsys.readouterr().out
    bpe = BPETokenizer.load(out)
    assert bpe.vocab_size == 400
    assert run(["tokenizer", "encode", str(out), "Jack Gisburn"]) == (0, "")
    printed = capsys.readouterr().out.split()
    assert list(map(int, printed)) == bpe.encode("Jack Gisburn")
    assert AutoTokenizer.from_pretrained(out)("Jack Gisburn")["input_ids"] == bpe.encode("Jack Gisburn")
    assert run(["tokenizer", "encode", str(out), "a<|endoftext|>", "--allow-special", "--json"]) == (0, "")
    assert '"<|endoftext|>"' in capsys.readouterr().out


def test_encode_gpt2_files(data_dir, capsys):
    assert run(["tokenizer", "encode", str(data_dir / "gpt2-bpe"), "Hello, world"]) == (0, "")
    assert capsys.readouterr().out.split() == ["15496", "11", "995"]


def test_bad_input(tmp_path, data_dir):
    corpus = data_dir / "the-verdict" / "the-verdict.txt"
    status, message = run(["tokenizer", "train", str(corpus), "--vocab-size", "200", "--out", str(tmp_path)])
    assert status == 2 and "below the minimum 257" in message
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    status, message = run(["tokenizer", "train", str(empty), "--vocab-size", "300", "--out", str(tmp_path / "o")])
    assert status == 2 and "empty" in message
    status, message = run(["tokenizer", "train", str(tmp_path / "nope.txt"), "--vocab-size", "300", "--out", "x"])
    assert status == 2 and "corpus file not found" in message
    status, message = run(["tokenizer", "encode", str(tmp_path), "hi"])
    assert status == 2 and "does not hold a tokenizer" in message
    status, message = run(["tokenizer", "encode", str(data_dir / "gpt2-bpe"), "<|endoftext|>"])
    assert status == 2 and "--allow-special" in message
    with pytest.raises(SystemExit):
        run(["tokenizer", "train", str(corpus), "--out", "x"])  # --vocab-size is required
