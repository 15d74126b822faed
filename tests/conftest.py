import os
from pathlib import Path

import pytest
from hypothesis import settings

# In CI, property tests replay the same examples every run (a failure there reproduces); locally they explore.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Tests never reach the network, and read the reference data from ../shared/data unless told otherwise.
for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_shared_data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if _shared_data.is_dir():
    os.environ.setdefault("HF_SCRATCH_DATA", str(_shared_data))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The reference data (shared/data). Missing data is a failure, not a skip: these tests are the evidence."""
    value = os.environ.get("HF_SCRATCH_DATA")
    if not value or not Path(value, "gpt2-bpe", "encoder.json").is_file():
        pytest.fail(f"reference data not found: set HF_SCRATCH_DATA to the shared/data folder (now {value!r})")
    return Path(value)


@pytest.fixture(scope="session")
def reference_gpt2(data_dir):
    """tiktoken's gpt2 encoding built by tiktoken's own loader from the local files: an independent reference."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files in place, no temp copies
        ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(data_dir / "gpt2-bpe" / "vocab.bpe"),
                                                encoder_json_file=str(data_dir / "gpt2-bpe" / "encoder.json"))
    r50k = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    return tiktoken.Encoding("gpt2-reference", pat_str=r50k, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)


@pytest.fixture(scope="session")
def gpt2_bpe(data_dir):
    from hf_scratch.tokenizers import BPETokenizer

    return BPETokenizer.load(data_dir / "gpt2-bpe")


@pytest.fixture(scope="session")
def corpora(data_dir) -> dict[str, str]:
    def read(*parts):
        return data_dir.joinpath(*parts).read_text(encoding="utf-8")

    return {
        "tinyshakespeare": read("tinyshakespeare", "input.txt"),
        "the-verdict": read("the-verdict", "the-verdict.txt"),
        "sms-spam": read("sms-spam", "SMSSpamCollection.tsv"),
        "alpaca": read("alpaca-instructions", "instruction-data.json"),
    }
