import pytest
import torch
from transformers.cache_utils import DynamicCache

from hf_scratch.model import ScratchGPTForCausalLM


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return ScratchGPTForCausalLM(tiny_config(qkv_bias=True)).eval()


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("length", [1, 5, 17, 32])  # 32 is the whole context
def test_incremental_decoding_equals_full_sequence(model, implementation, length):
    model.config._attn_implementation = implementation
    ids = torch.randint(0, 97, (2, length))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache = DynamicCache(config=model.config)
        steps = [model(ids[:, t : t + 1], cache=cache, use_cache=True).logits for t in range(length)]
    assert cache.get_seq_length() == length
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)


def test_chunked_prefill_equals_full_sequence(model):
    ids = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :10], use_cache=True)
        rest = model(ids[:, 10:], cache=out.cache, use_cache=True).logits  # several new tokens after a cache
    torch.testing.assert_close(torch.cat([out.logits, rest], dim=1), full, rtol=0, atol=1e-5)


def test_generate_with_and_without_cache_gives_the_same_tokens(model):
    prompt = torch.randint(0, 97, (3, 5))
    kwargs = dict(max_new_tokens=20, do_sample=False, pad_token_id=0)
    with_cache = model.generate(prompt, use_cache=True, **kwargs)
    without = model.generate(prompt, use_cache=False, **kwargs)
    assert with_cache.shape == (3, 25)
    assert torch.equal(with_cache, without)


def test_no_cache_is_built_while_training(model):
    ids = torch.randint(0, 97, (2, 8))
    assert model.train()(ids).cache is None
    assert model.eval()(ids).cache is not None  # config.use_cache applies at inference
    assert model(ids, use_cache=False).cache is None


def test_left_padded_batch_generates_like_each_row_alone(model):
    model.config.pad_token_id = 0
    short, long = torch.randint(1, 97, (1, 4)), torch.randint(1, 97, (1, 7))
    padded = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1), long])
    mask = (torch.arange(7) >= torch.tensor([[3], [0]])).long()
    kwargs = dict(max_new_tokens=6, do_sample=False)
    batched = model.generate(padded, attention_mask=mask, **kwargs)
    assert torch.equal(batched[1:], model.generate(long, **kwargs))
    assert torch.equal(batched[:1, 3:], model.generate(short, **kwargs))  # positions skip the padding
