import os
from pathlib import Path

# Tests never reach the network, and read the reference data from ../shared/data unless told otherwise.
for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_shared_data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if _shared_data.is_dir():
    os.environ.setdefault("HF_SCRATCH_DATA", str(_shared_data))
