import pytest
import torch

from hf_scratch.generation import PreallocatedKVCache, generate_tokens, next_token
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=97, context_length=24, emb_dim=48, n_heads=4, n_layers=2, drop_rate=0.1)
    return ScratchGPTForCausalLM(config).eval()


def test_greedy_matches_model_generate_with_and_without_cache(model):
    prompt = torch.randint(0, 97, (2, 6), generator=torch.Generator().manual_seed(1))
    reference = model.eval().generate(prompt, max_new_tokens=15, do_sample=False, pad_token_id=0)
    assert torch.equal(generate_tokens(model, prompt, 15), reference)
    assert torch.equal(generate_tokens(model, prompt, 15, use_cache=False), reference)


def test_cache_path_equals_recompute_past_the_context(model):
    prompt = torch.randint(0, 97, (1, 20), generator=torch.Generator().manual_seed(2))
    with_cache = generate_tokens(model, prompt, 30)  # grows to 50 tokens with a 24-token context
    assert with_cache.shape == (1, 50)
    assert torch.equal(with_cache, generate_tokens(model, prompt, 30, use_cache=False))
    assert torch.equal(generate_tokens(model, prompt, 30, context_size=8), generate_tokens(
        model, prompt, 30, context_size=8, use_cache=False))


def test_a_prompt_longer_than_the_context_is_cropped(model):
    long_prompt = torch.randint(0, 97, (1, 40), generator=torch.Generator().manual_seed(3))
    out = generate_tokens(model, long_prompt, 3)
    assert torch.equal(out[:, :40], long_prompt)
    assert torch.equal(out[:, 40:], generate_tokens(model, long_prompt[:, -24:], 3)[:, 24:])


def test_end_of_text_stops_like_generate(model):
    prompt = torch.randint(0, 97, (1, 5), generator=torch.Generator().manual_seed(4))
    free = generate_tokens(model, prompt, 12)
    eos = int(free[0, 5 + 3])  # the 4th new token
    stopped = generate_tokens(model, prompt, 12, eos_id=eos)
    first = (free[0, 5:] == eos).nonzero()[0].item()
    assert stopped.shape[1] == 5 + first + 1 and stopped[0, -1] == eos
    reference = model.generate(prompt, max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    assert torch.equal(stopped, reference)


def test_finished_rows_are_padded_with_end_of_text(model):
    prompts = torch.randint(0, 97, (3, 5), generator=torch.Generator().manual_seed(5))
    free = generate_tokens(model, prompts, 10)
    eos = int(free[0, 6])
    out = generate_tokens(model, prompts, 10, eos_id=eos)
    reference = model.generate(prompts, max_new_tokens=10, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    assert torch.equal(out, reference)


def test_top_k_masks_all_but_the_k_best():
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.0, 3.0]])
    draws = {int(next_token(logits, temperature=10.0, top_k=2, generator=torch.Generator().manual_seed(s)))
             for s in range(200)}
    assert draws == {1, 3}
    assert int(next_token(logits, temperature=0.0)) == 1
    assert int(next_token(logits, temperature=5.0, top_k=1)) == 1
    assert int(next_token(logits, top_k=50)) == 1  # k larger than the vocabulary keeps everything


def test_sampling_follows_the_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    draws = next_token(logits.expand(20000, 3), temperature=1.0, generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws[:, 0], minlength=3) / 20000
    torch.testing.assert_close(frequencies, torch.softmax(logits[0], -1), atol=0.015, rtol=0)
    cold = next_token(logits.expand(2000, 3), temperature=0.05, generator=torch.Generator().manual_seed(0))
    assert (cold == 0).all()


def test_seeded_sampling_is_reproducible(model):
    prompt = torch.zeros(1, 3, dtype=torch.long)

    def sample(seed):
        generator = torch.Generator().manual_seed(seed)
        return generate_tokens(model, prompt, 10, temperature=1.5, top_k=20, generator=generator)

    assert torch.equal(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))


def test_preallocated_cache_matches_dynamic_cache(model):
    ids = torch.randint(0, 97, (2, 10), generator=torch.Generator().manual_seed(6))
    cache = PreallocatedKVCache(model.config.n_layers, max_length=10)
    with torch.no_grad():
        first = model(ids[:, :7], cache=cache, use_cache=True).logits
        rest = [model(ids[:, t : t + 1], cache=cache, use_cache=True).logits for t in range(7, 10)]
        full = model(ids).logits
    torch.testing.assert_close(torch.cat([first, *rest], 1), full, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="cache holds 10 positions, 11 requested"):
        model(ids[:, :1], cache=cache, use_cache=True)


def test_model_mode_is_restored(model):
    model.train()
    generate_tokens(model, torch.zeros(1, 2, dtype=torch.long), 2)
    assert model.training
    model.eval()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(max_new_tokens=3, temperature=-0.5), "temperature"),
        (dict(max_new_tokens=3, top_k=0), "top_k"),
        (dict(max_new_tokens=3, context_size=100), "context_size 100 exceeds"),
    ],
)
def test_bad_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_tokens(model, torch.zeros(1, 2, dtype=torch.long), **kwargs)


def test_the_book_loop_drives_stock_gpt2_too(model):
    stock = model.to_gpt2().eval()
    prompt = torch.randint(0, 97, (2, 5), generator=torch.Generator().manual_seed(7))
    ours = generate_tokens(model, prompt, 12)
    assert torch.equal(generate_tokens(stock, prompt, 12), ours)
    assert torch.equal(generate_tokens(stock, prompt, 12, use_cache=False), ours)
