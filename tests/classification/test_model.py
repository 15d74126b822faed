"""ScratchGPTForSequenceClassification: head shape, pooling under left and right padding, loss, loading."""

import pytest
import torch
import torch.nn.functional as F
from classification_helpers import tiny_config
from transformers import AutoModelForSequenceClassification, GPT2Config, GPT2LMHeadModel

import hf_scratch  # noqa: F401  (registers the Auto classes)
from hf_scratch.model import ScratchGPTForSequenceClassification


def make(**overrides):
    torch.manual_seed(1)
    return ScratchGPTForSequenceClassification(tiny_config(**overrides)).eval()


def test_head_shape_and_loss():
    model = make(num_labels=3)
    assert model.score.weight.shape == (3, 16)
    ids = torch.randint(0, 49, (4, 7))
    labels = torch.tensor([0, 2, -100, 1])
    out = model(ids, labels=labels)
    assert out.logits.shape == (4, 3)
    keep = labels != -100
    assert torch.allclose(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_non_pad_reads_each_text_alone(side):
    """Each row of a padded batch gets the logits the text gets on its own: the pooled position is its last real
    token (right padding), and positions come from the mask (left padding)."""
    model = make()
    texts = [torch.randint(0, 49, (n,)) for n in (3, 6, 1)]
    longest = max(len(t) for t in texts)
    ids = torch.full((3, longest), 49)
    mask = torch.zeros(3, longest, dtype=torch.long)
    for i, t in enumerate(texts):
        span = slice(0, len(t)) if side == "right" else slice(longest - len(t), longest)
        ids[i, span], mask[i, span] = t, 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        alone = torch.cat([model(t[None]).logits for t in texts])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_last_pooling_reads_the_final_position():
    model = make(classifier_pooling="last")
    ids = torch.randint(0, 49, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        hidden = model.model(ids, attention_mask=mask).last_hidden_state
        expected = model.score(hidden[:, -1])
        assert torch.allclose(model(ids, attention_mask=mask).logits, expected)
        # and it differs from reading the last real token, so the test would notice a swap
        assert not torch.allclose(expected[0], model.score(hidden[0, 2]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_labels"):
        make(num_labels=1)
    with pytest.raises(ValueError, match="classifier_pooling"):
        make(classifier_pooling="mean")
    model = make()
    ids = torch.randint(0, 49, (2, 4))
    with pytest.raises(ValueError, match=r"label 2 is outside the label set \[0, 2\)"):
        model(ids, labels=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="empty"):
        model(ids, attention_mask=torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(2, 0, dtype=torch.long))


def test_loads_backbone_of_causal_lm_checkpoint(causal_lm_dir):
    folder, lm = causal_lm_dir
    model = ScratchGPTForSequenceClassification.from_pretrained(folder, num_labels=2)
    backbone = model.model.state_dict()
    for name, tensor in lm.model.state_dict().items():
        assert torch.equal(backbone[name], tensor), name  # loaded, not silently re-initialised
    assert model.score.weight.abs().max() < 0.2  # the new head has the model's small init, not garbage
    assert torch.isfinite(model.score.bias).all()
    auto = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, classifier_pooling="last")
    assert isinstance(auto, ScratchGPTForSequenceClassification) and auto.config.classifier_pooling == "last"
    assert torch.equal(auto.model.tok_emb.weight, lm.model.tok_emb.weight)


def test_hidden_size_mismatch_is_an_error(causal_lm_dir):
    folder, _ = causal_lm_dir
    with pytest.raises((ValueError, RuntimeError), match="mismatched_sizes"):
        ScratchGPTForSequenceClassification.from_pretrained(folder, config=tiny_config(emb_dim=32))


def test_from_gpt2_copies_the_backbone():
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)).eval()
    model = ScratchGPTForSequenceClassification.from_gpt2(gpt2, num_labels=2).eval()
    ids = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        ours = model.model(ids).last_hidden_state
        theirs = gpt2.transformer(ids).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert model(ids).logits.shape == (2, 2)
    with pytest.raises(ValueError, match="num_labels"):
        ScratchGPTForSequenceClassification.from_gpt2(gpt2, num_labels=1)
