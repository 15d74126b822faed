"""Precision, recall and F1 of one positive class (binary) or averaged over classes (macro), as an ``evaluate``
metric module. A ratio with a zero denominator counts as 0 (scikit-learn's ``zero_division=0``)."""

import datasets
import evaluate


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else 0.0


def _scores(predictions, references, label):
    tp = sum(p == label and r == label for p, r in zip(predictions, references, strict=True))
    fp = sum(p == label and r != label for p, r in zip(predictions, references, strict=True))
    fn = sum(p != label and r == label for p, r in zip(predictions, references, strict=True))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


class PrecisionRecallF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Precision, recall and F1; average='binary' scores pos_label, 'macro' averages classes.",
            citation="",
            inputs_description="predictions, references: lists of int class ids; pos_label (default 1); "
                               "average: 'binary' (default) or 'macro'",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, pos_label=1, average="binary"):
        predictions, references = [int(p) for p in predictions], [int(r) for r in references]
        if average == "binary":
            precision, recall, f1 = _scores(predictions, references, pos_label)
        elif average == "macro":
            labels = sorted(set(predictions) | set(references))
            per_class = [_scores(predictions, references, label) for label in labels]
            precision, recall, f1 = (sum(s[i] for s in per_class) / len(per_class) for i in range(3))
        else:
            raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")
        return {"precision": precision, "recall": recall, "f1": f1}
