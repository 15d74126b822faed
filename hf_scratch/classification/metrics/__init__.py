"""``evaluate`` metric modules shipped with the package, loaded by path, since ``evaluate.load("accuracy")``
needs the Hub. Each file is a self-contained metric script (no imports from hf_scratch)."""

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent


def metric_path(name: str) -> str:
    """Path of the metric script ``name`` (``accuracy`` or ``precision_recall_f1``) for ``evaluate.load``."""
    path = METRICS_DIR / f"{name}.py"
    if name.startswith("_") or not path.is_file():
        known = sorted(p.stem for p in METRICS_DIR.glob("*.py") if not p.stem.startswith("_"))
        raise ValueError(f"no metric module {name!r}; known: {', '.join(known)}")
    return str(path)
