"""Names of the model's linear layers, for LoRA (book appendix E).

Both ``hf_scratch.lora.apply_lora`` and peft's ``LoraConfig(target_modules=...)`` read a name as "a module whose
qualified name is this, or ends with '.' + this", so ``"W_query"`` selects ``model.trf_blocks.<i>.att.W_query`` in
every block. The feed-forward layers sit in an ``nn.Sequential`` (``ff.layers``: linear, GELU, linear), hence
``"ff.layers.0"`` and ``"ff.layers.2"``.
"""

LORA_ATTENTION_TARGETS = ("W_query", "W_key", "W_value", "out_proj")
LORA_FEED_FORWARD_TARGETS = ("ff.layers.0", "ff.layers.2")
# Every linear layer of every transformer block: the book's choice, and the default of --lora.
LORA_TARGET_MODULES = LORA_ATTENTION_TARGETS + LORA_FEED_FORWARD_TARGETS
# The heads: ScratchGPTForSequenceClassification.score is new for each task, so a LoRA run trains it in full (or
# adapts it too, as the book does); ScratchGPTForCausalLM.out_head is tied to the token embedding, so LoRA refuses it.
CLASSIFIER_HEAD = "score"
LM_HEAD = "out_head"
