"""Which parameters a classification finetune trains (book ch. 6.5: the last block, the final norm and the head)."""

from torch import nn

from ..model import ParameterReport, parameter_report

FREEZING_POLICIES = ("all", "last_block", "last_two_blocks", "head_only")


def trainable_modules(model: nn.Module, policy: str) -> list[nn.Module]:
    """The modules whose parameters ``policy`` trains, for a ``ScratchGPTForSequenceClassification``."""
    if policy not in FREEZING_POLICIES:
        raise ValueError(f"unknown freezing policy {policy!r}; choose one of {', '.join(FREEZING_POLICIES)}")
    head, backbone = model.score, model.model
    if policy == "all":
        return [model]
    if policy == "head_only":
        return [head]
    n_blocks = 1 if policy == "last_block" else 2
    if n_blocks > len(backbone.trf_blocks):
        raise ValueError(f"policy {policy!r} needs {n_blocks} transformer blocks, the model has "
                         f"{len(backbone.trf_blocks)}")
    # The final norm sits between the last block and the head; the book trains it with them.
    return [*backbone.trf_blocks[-n_blocks:], backbone.final_norm, head]


def apply_freezing(model: nn.Module, policy: str) -> ParameterReport:
    """Freeze every parameter, then unfreeze those ``policy`` trains; returns the parameter report."""
    modules = trainable_modules(model, policy)
    model.requires_grad_(False)
    for module in modules:
        module.requires_grad_(True)
    return parameter_report(model)
