"""Start/end logits back to answer text: the n-best spans of each example over its windows,
counting a token only where it has the most context, cut from the original context by character
spans so answers come back with their exact characters; v2.0 answers "" when the no-answer
score wins."""

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from bert_jax.data.squad_examples import QAExample
from bert_jax.data.squad_features import NOT_CONTEXT, QAFeatures


class Candidate(NamedTuple):
    """A ranked answer of one example; the text is "" for the no-answer (null) candidate."""

    text: str
    probability: float  # softmax of the scores over the example's n-best list
    start_logit: float
    end_logit: float


class _Span(NamedTuple):
    """A scored answer candidate (the null one has text "")."""

    score: float
    text: str
    start_logit: float
    end_logit: float


class Prediction(NamedTuple):
    """An example's answer ("" for no answer) and its ranked candidates."""

    answer: str
    candidates: list[Candidate]


def predictions(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, Prediction]:
    """Example id -> its answer and up to `n_best_size` distinct candidates, from [N, S] logits.

    v1.1 answers with the best-scoring span. v2.0 answers "" when the null score (the lowest
    start_logit[0] + end_logit[0] over the example's features) beats the best span's score by
    more than `null_score_diff_threshold`, and always lists the null candidate "". Candidate
    probabilities are a softmax over the list, as in BERT's nbest_predictions.json.
    """
    result = {}
    for example, spans, null in _ranked(
        examples, features, start_logits, end_logits, n_best_size, max_answer_length
    ):
        if not spans or (version_2 and null.score - spans[0].score > null_score_diff_threshold):
            answer = ""
        else:
            answer = spans[0].text
        if version_2:
            spans = sorted([*spans, null], key=lambda span: -span.score)[:n_best_size]
            if null not in spans:
                spans.append(null)
        probabilities = _softmax([span.score for span in spans])
        candidates = [
            Candidate(span.text, p, span.start_logit, span.end_logit)
            for span, p in zip(spans, probabilities, strict=True)
        ]
        result[example.id] = Prediction(answer, candidates)
    return result


def best_answers(examples, features, start_logits, end_logits, **options) -> dict[str, str]:
    """Example id -> predicted answer text; `options` as for `predictions`."""
    ranked = predictions(examples, features, start_logits, end_logits, **options)
    return {id_: prediction.answer for id_, prediction in ranked.items()}


def nbest(examples, features, start_logits, end_logits, **options) -> dict[str, list[Candidate]]:
    """Example id -> its ranked candidates with probabilities; `options` as for `predictions`."""
    ranked = predictions(examples, features, start_logits, end_logits, **options)
    return {id_: prediction.candidates for id_, prediction in ranked.items()}


def _ranked(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> Iterator[tuple[QAExample, list[_Span], _Span]]:
    """Every example with its best distinct non-empty spans (best first) and its null span."""
    start_logits = np.asarray(start_logits, np.float64)
    end_logits = np.asarray(end_logits, np.float64)
    shape = features.input_ids.shape
    if start_logits.shape != shape or end_logits.shape != shape:
        raise ValueError(
            f"logits of shapes {start_logits.shape} and {end_logits.shape} do not match the "
            f"features' {shape}; give one row of logits per feature, in order."
        )
    rows_of: list[list[int]] = [[] for _ in examples]
    for row, index in enumerate(features.example_index):
        rows_of[index].append(row)
    for example, rows in zip(examples, rows_of, strict=True):
        best: dict[str, _Span] = {}
        null = None
        for row in rows:
            starts, ends = start_logits[row], end_logits[row]
            if null is None or starts[0] + ends[0] < null.score:
                null = _Span(float(starts[0] + ends[0]), "", float(starts[0]), float(ends[0]))
            for span in _window_spans(
                example.context,
                starts,
                ends,
                features.token_char_spans[row],
                features.max_context[row],
                n_best_size,
                max_answer_length,
            ):
                if span.text not in best or span.score > best[span.text].score:
                    best[span.text] = span
        ranked = sorted(best.values(), key=lambda span: -span.score)[:n_best_size]
        yield example, ranked, _Span(0.0, "", 0.0, 0.0) if null is None else null


def _window_spans(
    context: str,
    starts: np.ndarray,
    ends: np.ndarray,
    char_spans: np.ndarray,
    max_context: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> Iterator[_Span]:
    """Spans of one feature among its `n_best_size` best starts and ends: context tokens only,
    starting where the token has its most context, at most `max_answer_length` tokens long."""
    in_context = char_spans[:, 0] != NOT_CONTEXT
    for start in _top(starts, in_context & max_context, n_best_size):
        for end in _top(ends, in_context, n_best_size):
            if end < start or end - start + 1 > max_answer_length:
                continue
            text = context[char_spans[start, 0] : char_spans[end, 1]]
            if text:  # a span of only whitespace tokens would read as "no answer"
                start_logit, end_logit = float(starts[start]), float(ends[end])
                yield _Span(start_logit + end_logit, text, start_logit, end_logit)


def _softmax(scores: list[float]) -> list[float]:
    """Probabilities of the scores (none for none)."""
    if not scores:
        return []
    weights = np.exp(np.array(scores) - max(scores))
    return [float(w) for w in weights / weights.sum()]


def _top(values: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` largest allowed values, largest first."""
    candidates = np.flatnonzero(allowed)
    return candidates[np.argsort(-values[candidates], kind="stable")[:k]]
