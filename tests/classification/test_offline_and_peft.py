"""The offline path runs end to end on the training split only; peft's SEQ_CLS LoRA finds and trains the head."""

import json

import torch
from classification_helpers import tiny_config

from hf_scratch.classification.offline import OfflineSpamConfig, offline_spam_run
from hf_scratch.model import ScratchGPTForSequenceClassification


def test_offline_path_smoke(data_dir, tmp_path):
    config = OfflineSpamConfig(output_dir=str(tmp_path / "off"), vocab_size=300, n_layers=1, emb_dim=16, n_heads=2,
                               context_length=64, pretrain_steps=2, pretrain_batch_size=4, bf16=False,
                               progress=False, finetune=dict(freeze="all", epochs=1, limit=16, batch_size=8,
                                                             lr=1e-3, padding="dynamic", max_length=32))
    summary = offline_spam_run(config)
    root = tmp_path / "off"
    for path in ("tokenizer/encoder.json", "pretrain/model.safetensors", "classifier/model.safetensors",
                 "classifier/metrics.json", "summary.json"):
        assert (root / path).is_file(), path
    assert set(summary["seconds"]) == {"tokenizer", "pretrain", "finetune", "total"}
    # The unlabeled corpus is exactly the training split's messages: no validation or test text leaks into it.
    from hf_scratch.classification import load_spam_splits

    splits = load_spam_splits()
    corpus = (root / "sms_train.txt").read_text(encoding="utf-8").split("<|endoftext|>")
    assert corpus == splits["train"]["text"]
    # The classifier started from the pretrained backbone.
    pretrained = json.loads((root / "pretrain" / "config.json").read_text())
    classifier = json.loads((root / "classifier" / "config.json").read_text())
    assert classifier["vocab_size"] == pretrained["vocab_size"] == 300


def test_peft_lora_seq_cls_trains_the_score_head():
    from peft import LoraConfig, get_peft_model

    model = ScratchGPTForSequenceClassification(tiny_config())
    peft_model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["W_query", "W_value"]))
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and any("lora_A" in n for n in trainable)
    assert not any("tok_emb" in n for n in trainable)
    out = peft_model(input_ids=torch.randint(0, 49, (2, 5)), labels=torch.tensor([0, 1]))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
