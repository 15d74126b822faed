"""The loading contract for the classifier (book ch. 6): a saved ``ScratchGPTForSequenceClassification`` folder
(model, tokenizer, card) gives, through ``transformers.pipeline("text-classification")`` in a fresh process where
``hf_scratch`` cannot be imported (offline, ``trust_remote_code=True``), the labels and scores it gives here."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from hf_scratch.data import load_sms_spam
from hf_scratch.hub import write_model_card
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForSequenceClassification
from hf_scratch.tokenizers import ENDOFTEXT, BPETokenizer, save_hf_tokenizer

# Of different lengths, so the batched call pads (right, with the end-of-text id) and the pooling must skip it.
TEXTS = ["WINNER!! You have won a free prize, call 09061701461 now to claim",
         "Ok lar... see you at home tonight",
         "Sorry, I'll call later",
         "URGENT! Your mobile number has been awarded a 2000 pound bonus. Text CLAIM to 81010"]
LABELS = {0: "ham", 1: "spam"}
TRUE_LABELS = [1, 0, 0, 1]


@pytest.fixture(scope="module")
def saved(data_dir, tmp_path_factory):
    """A tiny classifier with a BPE trained on SMS messages, saved with its tokenizer and model card."""
    messages = [text for _, text in load_sms_spam()[:1000]]
    bpe = BPETokenizer.train(messages, vocab_size=300)
    eos = bpe.special_tokens[ENDOFTEXT]
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=bpe.vocab_size, context_length=128, emb_dim=32, n_heads=4, n_layers=2,
                              drop_rate=0.0, eos_token_id=eos, pad_token_id=eos, num_labels=2, id2label=LABELS,
                              label2id={v: k for k, v in LABELS.items()})
    model = ScratchGPTForSequenceClassification(config)
    with torch.no_grad():  # off the initial values, so a silent re-initialisation on load cannot pass
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    # A few steps on TEXTS with their true labels, so that both labels occur among the predictions (a random
    # head says "ham" to all four, and then a swapped label mapping would go unnoticed).
    ids = [torch.tensor([bpe.encode(t)]) for t in TEXTS]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(100):
        predicted = []
        for x, y in zip(ids, TRUE_LABELS, strict=True):
            out = model(x, labels=torch.tensor([y]))
            out.loss.backward()
            predicted.append(int(out.logits.argmax()))
        if predicted == TRUE_LABELS:
            break
        optimizer.step()
        optimizer.zero_grad()
    assert predicted == TRUE_LABELS
    model.eval()
    run = tmp_path_factory.mktemp("contract_classifier") / "run"
    model.save_pretrained(run)
    save_hf_tokenizer(bpe, run)
    write_model_card(run, kind="text-classification", datasets=["sms-spam"], metrics={"test_accuracy": 0.5},
                     command="test")
    return run, model


def pipeline_outputs(classifier):
    """Top label per text (one at a time), every label's score (top_k=None), and a padded batch."""
    return {"top": classifier(TEXTS),
            "all": classifier(TEXTS, top_k=None),
            "batched": classifier(TEXTS, top_k=None, batch_size=len(TEXTS))}


SCRIPT = """
import sys
sys.modules["hf_scratch"] = None  # the package must not be importable here
try:
    import hf_scratch
except ImportError:
    pass
else:
    raise SystemExit("hf_scratch was importable")
import json
from transformers import pipeline

classifier = pipeline("text-classification", model=RUN, trust_remote_code=True)
model = classifier.model
result = {"class": type(model).__module__ + "." + type(model).__name__, "id2label": model.config.id2label,
          "top": classifier(TEXTS), "all": classifier(TEXTS, top_k=None),
          "batched": classifier(TEXTS, top_k=None, batch_size=len(TEXTS))}
print("RESULT " + json.dumps(result))
"""


def assert_same(got, want, what):
    """Same labels in the same order, scores within 1e-5."""
    assert [r["label"] for r in got] == [r["label"] for r in want], what
    for g, w in zip(got, want, strict=True):
        assert g["score"] == pytest.approx(w["score"], abs=1e-5), what


def test_fresh_process_text_classification_pipeline(saved, tmp_path):
    run, model = saved
    tokenizer = AutoTokenizer.from_pretrained(run)
    expected = pipeline_outputs(pipeline("text-classification", model=model, tokenizer=tokenizer))

    # The in-process pipeline is itself checked against the model: softmax of the logits of each text alone.
    with torch.no_grad():
        probs = [model(**tokenizer(t, return_tensors="pt")).logits[0].softmax(-1) for t in TEXTS]
    for p, top, every in zip(probs, expected["top"], expected["all"], strict=True):
        assert top == {"label": LABELS[int(p.argmax())], "score": pytest.approx(float(p.max()), abs=1e-6)}
        assert {r["label"]: r["score"] for r in every} == pytest.approx(
            {LABELS[i]: float(p[i]) for i in range(2)}, abs=1e-6)
    assert {r["label"] for r in expected["top"]} == {"ham", "spam"}  # both labels occur: a label swap would show
    for batched, single in zip(expected["batched"], expected["all"], strict=True):  # padding changes nothing
        assert_same(batched, single, "padded batch")

    header = f"RUN = {str(run)!r}\nTEXTS = {TEXTS!r}\n"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", header + textwrap.dedent(SCRIPT)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout  # nothing may need to ask
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    got = json.loads(lines[-1].removeprefix("RESULT "))

    # The model code that ran is the copy shipped in the folder, not the package.
    assert got["class"].startswith("transformers_modules.")
    assert got["class"].endswith(".ScratchGPTForSequenceClassification")
    assert got["id2label"] == {str(k): v for k, v in LABELS.items()}
    assert_same(got["top"], expected["top"], "top label")
    for name in ("all", "batched"):
        for got_rows, want_rows in zip(got[name], expected[name], strict=True):
            assert_same(got_rows, want_rows, name)
