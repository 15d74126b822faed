"""Accuracy: the fraction of predictions equal to the references (an ``evaluate`` metric module)."""

import datasets
import evaluate


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of predicted class ids equal to the reference class ids.",
            citation="",
            inputs_description="predictions: list of int class ids; references: list of int class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        if len(predictions) == 0:
            raise ValueError("accuracy of no predictions is undefined")
        correct = sum(int(p) == int(r) for p, r in zip(predictions, references, strict=True))
        return {"accuracy": correct / len(predictions)}
