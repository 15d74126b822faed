"""Parameter counts and memory, as the book reports them for GPTModel (ch. 4.6)."""

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ParameterReport:
    total: int  # unique parameters (a tied output head counts once)
    trainable: int
    output_head: int  # parameters of an untied output head, 0 when tied
    bytes_per_parameter: int = 4

    @property
    def without_output_head(self) -> int:
        """The count "considering weight tying": what the model has when the head reuses the embedding."""
        return self.total - self.output_head

    @property
    def size_mb(self) -> float:
        return self.total * self.bytes_per_parameter / 1024**2

    def __str__(self) -> str:
        lines = [f"Total parameters: {self.total:,}"]
        if self.output_head:
            lines.append(f"Considering weight tying: {self.without_output_head:,}")
        lines.append(f"Trainable: {self.trainable:,}")
        lines.append(f"Size ({self.bytes_per_parameter} bytes each): {self.size_mb:.2f} MB")
        return "\n".join(lines)


def parameter_report(model: nn.Module, bytes_per_parameter: int = 4) -> ParameterReport:
    """Count unique parameters of ``model``; ``bytes_per_parameter`` 4 is fp32, 2 is bf16/fp16."""
    params = {id(p): p for p in model.parameters()}.values()
    head = getattr(model, "out_head", None)
    embedding = getattr(getattr(model, "model", None), "tok_emb", None)
    tied = head is not None and embedding is not None and head.weight is embedding.weight
    return ParameterReport(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        output_head=head.weight.numel() if head is not None and not tied else 0,
        bytes_per_parameter=bytes_per_parameter,
    )
