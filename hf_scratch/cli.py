"""The ``hf-scratch`` command. Each stage of the book adds a subcommand here."""

import argparse
import sys

from .tokenizers.cli import add_tokenizer_command


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-scratch", description=__doc__)
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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: say what, not a traceback
        print(f"hf-scratch {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
