"""Classification finetuning (book ch. 6): the spam data, freezing policies, metrics, the Trainer run."""

from .data import LABELS, PadCollator, balanced_spam_rows, load_spam_splits, split_sizes, tokenize_splits
from .finetune import FinetuneConfig, build_classifier, finetune_classifier
from .freezing import FREEZING_POLICIES, apply_freezing, trainable_modules
from .metrics import metric_path
from .predict import classify_texts, load_classifier

__all__ = [
    "FREEZING_POLICIES",
    "LABELS",
    "FinetuneConfig",
    "PadCollator",
    "apply_freezing",
    "balanced_spam_rows",
    "build_classifier",
    "classify_texts",
    "finetune_classifier",
    "load_classifier",
    "load_spam_splits",
    "metric_path",
    "split_sizes",
    "tokenize_splits",
    "trainable_modules",
]
