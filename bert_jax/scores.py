"""Fine-tuning evaluation metrics in NumPy: GLUE scores, entity-level F1 and SQuAD EM/F1.

Every score is a plain Python float; ratios are fractions in [0, 1] (SQuAD too, not percent).
"""

import collections
import re
import string

import numpy as np
from numpy.typing import ArrayLike

from bert_jax.errors import UserError


def _paired(a: ArrayLike, b: ArrayLike, names: str) -> tuple[np.ndarray, np.ndarray]:
    """The two inputs as flat arrays, after checking they are non-empty and the same shape."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise UserError(f"{names} must have the same shape, got {a.shape} and {b.shape}.")
    if a.size == 0:
        raise UserError(f"{names} are empty: a metric needs at least one example.")
    return a.ravel(), b.ravel()


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, with 0/0 counted as 0 (sklearn's zero_division=0)."""
    return float(numerator / denominator) if denominator else 0.0


def accuracy(labels: ArrayLike, predictions: ArrayLike) -> float:
    """Fraction of predictions equal to their label."""
    labels, predictions = _paired(labels, predictions, "labels and predictions")
    return float(np.mean(labels == predictions))


def precision_recall_f1(
    labels: ArrayLike,
    predictions: ArrayLike,
    *,
    average: str,
    positive_label: int = 1,
    num_labels: int | None = None,
) -> dict[str, float]:
    """Precision, recall and F1 for one positive label ("binary") or over labels (macro/micro)."""
    labels, predictions = _paired(labels, predictions, "labels and predictions")
    if average == "binary":
        classes = np.array([positive_label])
    elif average in ("macro", "micro"):
        if num_labels is None:
            classes = np.union1d(labels, predictions)
        else:
            classes = np.arange(num_labels)
            outside = np.setdiff1d(np.union1d(labels, predictions), classes)
            if outside.size:
                raise UserError(
                    f"Label {outside[0]} is outside 0..{num_labels - 1}: "
                    "raise num_labels or fix the labels."
                )
    else:
        raise UserError(f"average={average!r} is not one of 'binary', 'macro' or 'micro'.")

    # Per-class counts, one row per class: [:, None] broadcasts against the examples.
    is_label = labels[None, :] == classes[:, None]
    is_predicted = predictions[None, :] == classes[:, None]
    tp = np.sum(is_label & is_predicted, axis=1)
    fp = np.sum(~is_label & is_predicted, axis=1)
    fn = np.sum(is_label & ~is_predicted, axis=1)
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)

    per_class = [
        # 2tp / (2tp + fp + fn) equals 2PR / (P + R) and is 0 (not 0/0) whenever tp is 0.
        (_ratio(t, t + p), _ratio(t, t + n), _ratio(2 * t, 2 * t + p + n))
        for t, p, n in zip(tp, fp, fn, strict=True)
    ]
    # Macro F1 is the mean of per-class F1 (as sklearn), not the F1 of macro P and R.
    precision, recall, f1 = np.mean(per_class, axis=0)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def matthews_corrcoef(labels: ArrayLike, predictions: ArrayLike) -> float:
    """Matthews correlation (Gorodkin's multiclass R_K); 0.0 when undefined, as sklearn."""
    labels, predictions = _paired(labels, predictions, "labels and predictions")
    _, codes = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    n = labels.size
    k = int(codes.max()) + 1
    confusion = np.zeros((k, k), dtype=np.float64)  # float: products of counts overflow int32
    np.add.at(confusion, (codes[:n], codes[n:]), 1.0)
    true_counts, predicted_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    correct = np.trace(confusion)
    covariance = correct * n - true_counts @ predicted_counts
    denominator = np.sqrt(
        (n * n - predicted_counts @ predicted_counts) * (n * n - true_counts @ true_counts)
    )
    # A constant labels or predictions vector gives 0/0; sklearn reports 0 for it.
    return float(covariance / denominator) if denominator else 0.0


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation coefficient; NaN when either input is constant, as scipy."""
    x, y = _paired(x, y, "x and y")
    x = x.astype(np.float64) - np.mean(x, dtype=np.float64)
    y = y.astype(np.float64) - np.mean(y, dtype=np.float64)
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if not denominator:
        return float("nan")
    # Rounding can push |r| a hair past 1 for perfectly correlated data.
    return float(np.clip(np.dot(x, y) / denominator, -1.0, 1.0))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of the values, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(starts_group) - 1
    first = np.flatnonzero(starts_group)  # 0-based position where each group starts
    last = np.concatenate([first[1:], [values.size]]) - 1
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = ((first + last) / 2 + 1)[group]
    return ranks


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation, ties given average ranks; NaN when an input is constant."""
    x, y = _paired(x, y, "x and y")
    return pearson(_average_ranks(x), _average_ranks(y))


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve for 0/1 labels, tied scores counting half (Mann-Whitney U)."""
    labels, scores = _paired(labels, scores, "labels and scores")
    if not np.isin(labels, [0, 1]).all():
        raise UserError("roc_auc needs binary labels: every label must be 0 or 1.")
    positive = labels == 1
    num_positive = int(positive.sum())
    num_negative = labels.size - num_positive
    if num_positive == 0 or num_negative == 0:
        raise UserError(
            f"roc_auc is undefined because every label is {int(labels[0])}: "
            "evaluate on data that has both classes."
        )
    # Rank-sum form of U: average ranks make each tied positive/negative pair count 1/2.
    rank_sum = _average_ranks(scores)[positive].sum()
    u = rank_sum - num_positive * (num_positive + 1) / 2
    return float(u / (num_positive * num_negative))


def entity_spans(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, start, end) of each entity in BIO tags, end exclusive, with conlleval's rules."""
    spans = set()
    kind, start = None, 0  # the entity open at the current position, if any
    for i, tag in enumerate([*tags, "O"]):  # the trailing "O" closes an entity at the end
        if tag == "O":
            prefix, tag_kind = "O", None
        elif tag[:2] in ("B-", "I-") and len(tag) > 2:
            prefix, tag_kind = tag[0], tag[2:]
        else:
            raise UserError(f"Tag {tag!r} is not BIO (IOB2): use 'O', 'B-<type>' or 'I-<type>'.")
        # conlleval: I-X continues only an entity of type X; a stray I-X starts a new one.
        if prefix == "I" and tag_kind == kind:
            continue
        if kind is not None:
            spans.add((kind, start, i))
        kind, start = tag_kind, i
    return spans


def entity_f1(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 over sentences of BIO tags (CoNLL-2003 conlleval)."""
    if len(gold) != len(predicted):
        raise UserError(f"gold has {len(gold)} sentences but predicted has {len(predicted)}.")
    correct = num_gold = num_predicted = 0
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        if len(gold_tags) != len(predicted_tags):
            raise UserError(
                f"Sentence {index} has {len(gold_tags)} gold tags "
                f"but {len(predicted_tags)} predicted tags."
            )
        gold_spans, predicted_spans = entity_spans(gold_tags), entity_spans(predicted_tags)
        # An entity is correct only with the same type and both boundaries.
        correct += len(gold_spans & predicted_spans)
        num_gold += len(gold_spans)
        num_predicted += len(predicted_spans)
    return {
        "precision": _ratio(correct, num_predicted),
        "recall": _ratio(correct, num_gold),
        "f1": _ratio(2 * correct, num_gold + num_predicted),
    }


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def _squad_normalize(text: str) -> str:
    """The official script's normalize_answer: lowercase, no punctuation, articles, extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _squad_f1(prediction: str, gold: str) -> float:
    """Token-level F1 of normalised strings; two empty ("no answer") strings agree with F1 1."""
    predicted_tokens = _squad_normalize(prediction).split()
    gold_tokens = _squad_normalize(gold).split()
    if not predicted_tokens or not gold_tokens:
        return float(predicted_tokens == gold_tokens)
    common = collections.Counter(predicted_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    return _ratio(2 * same, len(predicted_tokens) + len(gold_tokens))


def squad_scores(predictions: dict[str, str], answers: dict[str, list[str]]) -> dict[str, float]:
    """Exact match and F1 of the official SQuAD v1.1/v2.0 script, as fractions over answers' ids."""
    if not answers:
        raise UserError("squad_scores got no questions: answers is empty.")
    exact = f1 = 0.0
    for qid, gold_answers in answers.items():
        prediction = predictions.get(qid, "")
        # As the v2.0 script: golds that normalise to "" are dropped, and none means "no answer".
        golds = [g for g in gold_answers if _squad_normalize(g)] or [""]
        normalized = _squad_normalize(prediction)
        exact += max(float(normalized == _squad_normalize(g)) for g in golds)
        f1 += max(_squad_f1(prediction, g) for g in golds)
    return {"exact_match": exact / len(answers), "f1": f1 / len(answers)}
