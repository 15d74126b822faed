"""The ``hf-scratch`` command. Each stage of the book adds a subcommand here."""

import argparse
import sys
from pathlib import Path

from .classification.cli import add_classify_command, add_finetune_classifier_command
from .evaluation.cli import add_judge_command
from .hub import add_push_command
from .instruction.cli import add_finetune_instruct_command
from .options import add_dataclass_options
from .tokenizers.cli import add_tokenizer_command
from .training.lora_setup import add_merge_lora_command


def _params(args):
    import torch

    from .model import ScratchGPTConfig, ScratchGPTForCausalLM, parameter_report

    config = ScratchGPTConfig.from_preset(args.preset, qkv_bias=args.qkv_bias, tie_word_embeddings=args.tied)
    with torch.device("meta"):  # count shapes without allocating gigabytes
        model = ScratchGPTForCausalLM(config)
    print(f"{args.preset}: {config.n_layers} layers x {config.emb_dim} dims x {config.n_heads} heads, "
          f"vocab {config.vocab_size}, context {config.context_length}, "
          f"{'tied' if config.tie_word_embeddings else 'untied'} output head")
    print(parameter_report(model, bytes_per_parameter=args.bytes))


EMBEDDED_DEMO_STEPS = 2000

PRETRAIN_HELP = {
    "corpus": "the-verdict, tinyshakespeare, or a UTF-8 text file (default: the embedded 'harbour-year' text; "
              f"then, unless --epochs or --max-steps say otherwise, {EMBEDDED_DEMO_STEPS} steps over windows at "
              "every offset)",
    "tokenizer": "gpt2, bytes, or a folder from 'hf-scratch tokenizer train' (default: bytes for the embedded "
                 "text, gpt2 otherwise)",
    "preset": "GPT-2 size for the model's dimensions: gpt2, gpt2-medium, gpt2-large, gpt2-xl",
    "max_length": "input tokens per training window (default: context_length - 1)",
    "stride": "tokens between training windows (default: max_length; 1 = every offset)",
    "max_steps": "optimizer steps (overrides --epochs)",
    "grad_accum": "micro-batches per optimizer step",
    "lr": "peak learning rate, reached after the warmup",
    "min_lr": "learning rate at the end of the cosine decay",
    "max_grad_norm": "clip the global gradient norm to this",
    "eval_every": "evaluate (validation loss, sample) every N steps",
    "eval_batches": "validation batches per evaluation (default: the whole validation split)",
    "prompt": "text the samples continue",
    "temperature": "sampling temperature of the samples (0: greedy)",
    "engine": "trainer (transformers.Trainer, the default) or loop (the book's from-scratch loop)",
    "resume": "continue the run in --output-dir from its last checkpoint, with its saved settings",
    "overwrite": "replace a non-empty --output-dir",
    "save_every": "checkpoint every N steps (default: at every evaluation)",
    "progress": "show the progress bar",
}


def _pretrain(args):
    from transformers.utils import logging

    from .training import PretrainConfig, pretrain, resume_config

    logging.disable_progress_bar()  # checkpoint-writing bars would cut through the training bar

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    command = "hf-scratch " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["pretrain"] else "hf-scratch pretrain"
    if values["resume"]:
        config = resume_config(values["output_dir"], progress=values["progress"])
    else:
        if values["corpus"] is None and values["max_steps"] is None and values["epochs"] == 1.0:
            # The first-run demo on the embedded text: windows at every offset, a couple of minutes of steps.
            values["max_steps"] = EMBEDDED_DEMO_STEPS
            values["stride"] = values["stride"] or 1
        config = PretrainConfig(**values, command=command)
    metrics = pretrain(config)
    if metrics:
        print(f"done: {metrics['steps']} steps in {metrics['wall_seconds']:.0f} s, validation loss "
              f"{metrics['final_validation_loss']:.3f}; run folder {config.output_dir} (model, tokenizer, "
              f"metrics.json, loss.png, samples.txt, README.md)")
        print(f'try: hf-scratch generate {config.output_dir} "{config.prompt}"')


def _generate(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    from .training.trainer_engine import last_checkpoint

    logging.disable_progress_bar()

    source = Path(args.checkpoint)
    if not (source / "config.json").is_file():
        checkpoint = last_checkpoint(source / "checkpoints")
        if checkpoint is None:
            raise FileNotFoundError(f"{source} holds no model (config.json) and no checkpoints/")
        source = checkpoint
    if args.temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {args.temperature}")
    tokenizer_source = source if (source / "tokenizer.json").is_file() else Path(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=args.trust_remote_code).eval()
    torch.manual_seed(args.seed)
    inputs = tokenizer(args.prompt, return_tensors="pt")
    context = model.config.max_position_embeddings
    room = context - inputs["input_ids"].shape[1]
    if room <= 0:
        raise ValueError(f"the prompt has {inputs['input_ids'].shape[1]} tokens; the model's context holds {context}")
    max_new_tokens = args.max_new_tokens
    if max_new_tokens > room:
        print(f"note: the model's context is {context} tokens; generating {room} new tokens, not {max_new_tokens}",
              file=sys.stderr)
        max_new_tokens = room
    sampling = args.temperature > 0
    output = model.generate(
        **inputs, max_new_tokens=max_new_tokens, do_sample=sampling,
        temperature=args.temperature if sampling else None, top_k=args.top_k if sampling else None,
        top_p=args.top_p if sampling else None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    print(tokenizer.decode(output[0], skip_special_tokens=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-scratch", description="The stages of the book, from tokenizer to "
                                     "checkpoint, as commands (each has --help).")
    sub = parser.add_subparsers(dest="command", required=True)

    params = sub.add_parser("params", help="parameter count and memory of a GPT-2 size (book ch. 4.6)")
    params.add_argument("--preset", default="gpt2", help="gpt2, gpt2-medium, gpt2-large, gpt2-xl (or 124M ... 1558M)")
    params.add_argument("--tied", action=argparse.BooleanOptionalAction, default=False,
                        help="share the output head with the token embedding (default: untied, as the book counts)")
    params.add_argument("--qkv-bias", action=argparse.BooleanOptionalAction, default=False,
                        help="query/key/value bias as in OpenAI's GPT-2 (default: none, as the book's config)")
    params.add_argument("--bytes", type=int, default=4, help="bytes per parameter: 4 for fp32, 2 for bf16")
    params.set_defaults(func=_params)

    add_tokenizer_command(sub)

    from .training.config import PretrainConfig

    pretrain = sub.add_parser("pretrain", help="pretrain a GPT (book ch. 5); with no options, a small one on the "
                                               "text shipped with the package, offline, in a few minutes")
    add_dataclass_options(pretrain, PretrainConfig, PRETRAIN_HELP)
    pretrain.set_defaults(func=_pretrain)

    generate = sub.add_parser("generate", help="continue a prompt with a run folder or any GPT-2-style checkpoint")
    generate.add_argument("checkpoint", help="a run folder of 'hf-scratch pretrain', or a checkpoint folder")
    generate.add_argument("prompt")
    generate.add_argument("--max-new-tokens", type=int, default=50)
    generate.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy decoding")
    generate.add_argument("--top-k", type=int, default=None)
    generate.add_argument("--top-p", type=float, default=None)
    generate.add_argument("--seed", type=int, default=123)
    generate.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction, default=True,
                          help="allow the checkpoint's own model code (needed without hf_scratch installed)")
    generate.set_defaults(func=_generate)

    add_finetune_classifier_command(sub)
    add_classify_command(sub)
    add_finetune_instruct_command(sub)
    add_judge_command(sub)
    add_push_command(sub)
    add_merge_lora_command(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as error:  # bad input: say what, not a traceback
        print(f"hf-scratch {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ArithmeticError as error:  # a diverged run (non-finite loss)
        print(f"hf-scratch {args.command}: stopped: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
