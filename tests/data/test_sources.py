"""Named data sets: lookup order, checksums, offline errors, and downloads (from a local server only)."""

import dataclasses
import functools
import hashlib
import http.server
import os
import threading
import zipfile

import pytest

from hf_scratch.data import sources
from hf_scratch.data.sources import (
    SOURCES,
    ChecksumError,
    DataNotFoundError,
    fetch,
    fetch_files,
    load_alpaca,
    load_sms_spam,
    read_text,
)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(url):
        raise AssertionError(f"tests must not reach the network ({url})")

    monkeypatch.setattr(sources, "_urlopen", refuse)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_SCRATCH_CACHE", str(cache))
    return cache


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving a temporary folder."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_as(monkeypatch, name, url, sha256=None):
    """Point data set ``name``'s (first) file at ``url``."""
    source = SOURCES[name]
    remote = dataclasses.replace(source.files[0], url=url, sha256=sha256 or source.files[0].sha256)
    monkeypatch.setitem(SOURCES, name, dataclasses.replace(source, files=(remote, *source.files[1:])))


# ---------------------------------------------------------------------------------------------------- lookup
@pytest.mark.parametrize("name", list(SOURCES))
def test_every_source_resolves_from_hf_scratch_data(name, data_dir, no_network, empty_cache):
    files = fetch_files(name)
    source = SOURCES[name]
    assert {f.name for f in source.files} == set(files)
    for remote in source.files:
        path = files[remote.name]
        assert path == data_dir / remote.path
        assert path.stat().st_size == remote.size
        assert remote.url.startswith("https://")
    assert not empty_cache.exists()  # nothing copied


def test_readers(data_dir, no_network):
    rows = load_sms_spam()
    assert len(rows) == 5574
    assert sum(label == "spam" for label, _ in rows) == 747
    records = load_alpaca()
    assert len(records) == 1100 and set(records[0]) == {"instruction", "input", "output"}
    assert read_text("the-verdict").startswith("I HAD always thought Jack Gisburn")
    assert fetch("gpt2-bpe") == data_dir / "gpt2-bpe"


def test_explicit_path_first(tmp_path, data_dir, no_network, monkeypatch):
    copy = tmp_path / "mine.txt"
    copy.write_bytes((data_dir / "the-verdict" / "the-verdict.txt").read_bytes())
    assert fetch("the-verdict", copy) == copy
    assert fetch("the-verdict", tmp_path / ".." / tmp_path.name / "mine.txt").samefile(copy)
    folder = tmp_path / "bpe"
    folder.mkdir()
    for name in ("encoder.json", "vocab.bpe"):
        (folder / name).write_bytes((data_dir / "gpt2-bpe" / name).read_bytes())
    monkeypatch.delenv("HF_SCRATCH_DATA")
    assert fetch("gpt2-bpe", folder) == folder
    with pytest.raises(DataNotFoundError, match="does not exist"):
        fetch("the-verdict", tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="has several files"):
        fetch("gpt2-bpe", folder / "encoder.json")


def test_hf_scratch_data_before_cache_and_cache_when_unset(data_dir, empty_cache, no_network, monkeypatch):
    cached = empty_cache / "data" / "the-verdict" / "the-verdict.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((data_dir / "the-verdict" / "the-verdict.txt").read_bytes())
    assert fetch("the-verdict") == data_dir / "the-verdict" / "the-verdict.txt"
    monkeypatch.delenv("HF_SCRATCH_DATA")
    assert fetch("the-verdict") == cached


def test_offline_and_missing_names_dataset_variable_and_url(empty_cache, no_network, monkeypatch):
    monkeypatch.delenv("HF_SCRATCH_DATA")
    monkeypatch.setenv("HF_SCRATCH_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as raised:
        fetch("tinyshakespeare")
    message = str(raised.value)
    assert "'tinyshakespeare'" in message and "HF_SCRATCH_DATA" in message
    assert SOURCES["tinyshakespeare"].files[0].url in message
    monkeypatch.delenv("HF_SCRATCH_OFFLINE")
    with pytest.raises(DataNotFoundError, match="sms-spam"):
        fetch("sms-spam", download=False)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'wikitext'; known: the-verdict"):
        fetch("wikitext")


def test_checksum_mismatch_names_both_hashes_and_keeps_the_file(tmp_path, no_network, monkeypatch):
    folder = tmp_path / "data" / "the-verdict"
    folder.mkdir(parents=True)
    bad = folder / "the-verdict.txt"
    bad.write_text("not the story\n", encoding="utf-8")
    monkeypatch.setenv("HF_SCRATCH_DATA", str(tmp_path / "data"))
    actual = hashlib.sha256(b"not the story\n").hexdigest()
    with pytest.raises(ChecksumError) as raised:
        fetch("the-verdict")
    assert actual in str(raised.value) and SOURCES["the-verdict"].files[0].sha256 in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert bad.read_text(encoding="utf-8") == "not the story\n"  # never overwritten
    assert fetch("the-verdict", verify=False) == bad


# ------------------------------------------------------------------------------------------------- downloads
def test_download_verifies_and_renames(server, data_dir, empty_cache, monkeypatch):
    root, base = server
    (root / "input.txt").write_bytes((data_dir / "tinyshakespeare" / "input.txt").read_bytes())
    serve_as(monkeypatch, "tinyshakespeare", f"{base}/input.txt")
    monkeypatch.delenv("HF_SCRATCH_DATA")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    path = fetch("tinyshakespeare", progress=False)
    assert path == empty_cache / "data" / "tinyshakespeare" / "input.txt"
    assert path.read_bytes() == (data_dir / "tinyshakespeare" / "input.txt").read_bytes()
    assert os.listdir(path.parent) == ["input.txt"]  # no partial files left
    (root / "input.txt").unlink()
    assert fetch("tinyshakespeare", progress=False) == path  # the cache answers now


def test_download_with_wrong_checksum_saves_nothing(server, empty_cache, monkeypatch):
    root, base = server
    (root / "input.txt").write_text("tampered", encoding="utf-8")
    serve_as(monkeypatch, "tinyshakespeare", f"{base}/input.txt")
    monkeypatch.delenv("HF_SCRATCH_DATA")
    with pytest.raises(ChecksumError, match=hashlib.sha256(b"tampered").hexdigest()):
        fetch("tinyshakespeare", download=True, progress=False)
    folder = empty_cache / "data" / "tinyshakespeare"
    assert not folder.exists() or os.listdir(folder) == []


def test_download_extracts_the_sms_zip(server, data_dir, empty_cache, monkeypatch):
    root, base = server
    with zipfile.ZipFile(root / "sms.zip", "w") as archive:
        archive.write(data_dir / "sms-spam" / "SMSSpamCollection.tsv", "SMSSpamCollection")
        archive.writestr("readme", "UCI")
    serve_as(monkeypatch, "sms-spam", f"{base}/sms.zip")
    monkeypatch.delenv("HF_SCRATCH_DATA")
    path = fetch("sms-spam", download=True, progress=False)
    assert path.name == "SMSSpamCollection.tsv"
    assert path.read_bytes() == (data_dir / "sms-spam" / "SMSSpamCollection.tsv").read_bytes()


def test_download_failure_names_the_url(server, empty_cache, monkeypatch):
    _, base = server
    serve_as(monkeypatch, "the-verdict", f"{base}/missing.txt")
    monkeypatch.delenv("HF_SCRATCH_DATA")
    with pytest.raises(DataNotFoundError, match=f"could not download data set 'the-verdict' from {base}/missing.txt"):
        fetch("the-verdict", download=True, progress=False)


# ---------------------------------------------------------------------------------------------- GPT-2 helpers
def test_gpt2_encoding_from_local_files(data_dir, no_network, corpora, reference_gpt2, monkeypatch):
    from hf_scratch.tokenizers import gpt2_encoding, load_gpt2_bpe

    encoding = gpt2_encoding()
    assert encoding.n_vocab == 50257 and encoding.eot_token == 50256
    text = corpora["tinyshakespeare"]
    assert encoding.encode(text) == reference_gpt2.encode(text)
    assert gpt2_encoding(data_dir / "gpt2-bpe") is encoding  # same files, same cached object
    assert load_gpt2_bpe().vocab_size == 50257
    monkeypatch.delenv("HF_SCRATCH_DATA")
    with pytest.raises(DataNotFoundError):
        gpt2_encoding(data_dir / "nowhere")
    monkeypatch.setenv("HF_SCRATCH_CACHE", str(data_dir / "nowhere"))
    monkeypatch.setenv("HF_SCRATCH_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="'gpt2-bpe'.*HF_SCRATCH_DATA.*openaipublic"):
        gpt2_encoding()  # offline: no silent attempt through tiktoken's downloader
