import pytest
import torch
import torch.nn.functional as F

from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM, parameter_report


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return ScratchGPTForCausalLM(tiny_config()).eval()


def test_loss_is_next_token_cross_entropy_and_ignores_minus_100(model):
    ids = torch.randint(0, 97, (2, 12))
    out = model(ids, labels=ids)
    expected = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())  # the book's targets
    torch.testing.assert_close(out.loss, expected)
    labels = ids.clone()
    labels[:, 5:] = -100
    masked = F.cross_entropy(out.logits[:, :4].flatten(0, 1), ids[:, 1:5].flatten())
    torch.testing.assert_close(model(ids, labels=labels).loss, masked)


def test_tuple_output_and_logits_to_keep(model):
    ids = torch.randint(0, 97, (2, 12))
    full = model(ids).logits
    torch.testing.assert_close(model(ids, logits_to_keep=1).logits, full[:, -1:])
    as_tuple = model(ids, labels=ids, use_cache=False, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[1], full)


def test_sequence_longer_than_context_names_both_lengths(model):
    with pytest.raises(ValueError, match=r"sequence length 33 .*context_length 32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_out_of_vocabulary_ids_are_a_value_error(model):
    with pytest.raises(ValueError, match=r"token id 97 is outside the vocabulary \[0, 97\)"):
        model(torch.tensor([[1, 2, 97]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1, 2]]))


@pytest.mark.parametrize(
    "ids, message",
    [
        (torch.zeros(5, dtype=torch.long), "2-D tensor"),
        (torch.zeros(1, 3), "integer token ids"),
        (torch.zeros(1, 0, dtype=torch.long), "empty"),
        ([[1, 2, 3]], "2-D tensor"),
    ],
)
def test_malformed_input_ids(model, ids, message):
    with pytest.raises(ValueError, match=message):
        model(ids)


def test_bad_labels_and_masks(model):
    ids = torch.randint(0, 97, (2, 6))
    with pytest.raises(ValueError, match="labels have shape"):
        model(ids, labels=ids[:, :5])
    with pytest.raises(ValueError, match="labels must be -100 or token ids"):
        model(ids, labels=torch.full_like(ids, 97))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 4\), expected \(2, 6\)"):
        model(ids, attention_mask=torch.tensor([[1, 1, 0, 1]] * 2))


def test_parameter_counts_match_the_book():
    with torch.device("meta"):
        untied = ScratchGPTForCausalLM(ScratchGPTConfig(tie_word_embeddings=False))  # the book's GPT_CONFIG_124M
        tied = ScratchGPTForCausalLM(ScratchGPTConfig(tie_word_embeddings=True))
    report = parameter_report(untied)
    assert report.total == 163_009_536
    assert report.without_output_head == 124_412_160
    assert round(report.size_mb, 2) == 621.83
    assert parameter_report(tied).total == 124_412_160 == tied.num_parameters()
    assert parameter_report(tied, bytes_per_parameter=2).size_mb == pytest.approx(124_412_160 * 2 / 2**20)


def test_trainable_count_follows_requires_grad(model):
    for param in model.model.trf_blocks.parameters():
        param.requires_grad_(False)
    report = parameter_report(model)
    frozen = sum(p.numel() for p in model.model.trf_blocks.parameters())
    assert report.trainable == report.total - frozen


def test_decoding_head_fast_path_tracks_the_weight(model):
    ids = torch.randint(0, 97, (3, 1))
    with torch.no_grad():
        fast = model(ids, use_cache=False).logits  # one position, no grad: transposed copy of the head
        torch.testing.assert_close(fast, model.out_head(model.model(ids).last_hidden_state), rtol=0, atol=1e-5)
        model.model.tok_emb.weight.mul_(2.0)  # in place, through the tied embedding
        refreshed = model(ids, use_cache=False).logits
        torch.testing.assert_close(refreshed, model.out_head(model.model(ids).last_hidden_state), rtol=0, atol=1e-5)
    assert not torch.allclose(refreshed, fast)
    with_grad = model(ids, use_cache=False).logits  # gradients needed: the plain layer, so backward reaches it
    with_grad.sum().backward()
    assert model.out_head.weight.grad is not None
