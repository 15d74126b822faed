"""Classify texts with a saved classifier: label and probability per text."""

from __future__ import annotations

import os
import warnings

import torch


def load_classifier(checkpoint: str | os.PathLike, *, trust_remote_code: bool = True):
    """``(model, tokenizer)`` of a classifier folder, through the Auto classes."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not os.path.isfile(os.path.join(checkpoint, "config.json")):
        raise FileNotFoundError(f"{checkpoint} holds no model (config.json)")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer


@torch.no_grad()
def classify_texts(model, tokenizer, texts: list[str]) -> list[tuple[str, float]]:
    """``(label, probability)`` of the most probable class of each text. Texts longer than the model's context
    keep their first tokens (with a warning); an empty text is a ``ValueError``."""
    from ..tokenizers.adapters import encoder_of, pad_id_of
    from .data import PadCollator

    encode = encoder_of(tokenizer)
    limit = model.config.max_position_embeddings
    features = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text {i} is empty: nothing to classify")
        ids = encode(text)
        if len(ids) > limit:
            warnings.warn(f"text {i} has {len(ids)} tokens; kept the first {limit} (the model's context)",
                          stacklevel=2)
            ids = ids[:limit]
        features.append({"input_ids": ids})
    batch = PadCollator(pad_id_of(tokenizer))(features)
    device = next(model.parameters()).device
    logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
    probs = logits.float().softmax(-1)
    best = probs.argmax(-1)
    return [(model.config.id2label.get(int(b), str(int(b))), float(p[b])) for b, p in zip(best, probs, strict=True)]
