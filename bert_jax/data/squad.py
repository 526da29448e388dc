"""Extractive question answering data (SQuAD v1.1 and v2.0): read examples, cut them into
fixed-length features, and decode start/end logits back to answer text.

Follows `run_squad.py` of google-research/bert: each feature is `[CLS] question [SEP] window
[SEP]` where the windows slide over the context `doc_stride` tokens at a time, the training
target is the answer's first and last token in the window ([CLS], position 0, when the window
does not hold the whole answer or there is none), and decoding counts a token only in the window
where it has the most context around it. Answers are cut from the original context by the
character spans the tokenizer reports, so they come back with their exact characters.
"""

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from etils import epath

from bert_jax.data import sources
from bert_jax.data.offsets import token_spans
from bert_jax.data.sources import numbered_lines
from bert_jax.data.tokenizer import Tokenizer
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

NOT_CONTEXT = -1
"""Character span entry of question, special and padding tokens."""


@dataclasses.dataclass(frozen=True)
class QAExample:
    """A question about a context; `answers` empty means it has no answer (SQuAD v2)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]  # character offset of each answer in `context`


@dataclasses.dataclass(frozen=True)
class QAFeatures:
    """Windows of examples as arrays, rows `[CLS] question [SEP] context window [SEP] [PAD]...`.

    The first five arrays feed the model; the last three stay on the host for decoding.
    """

    input_ids: np.ndarray  # int32 [N, S]
    token_type_ids: np.ndarray  # int32 [N, S]: 1 for the window and its [SEP], else 0
    attention_mask: np.ndarray  # int32 [N, S]: 1 for real tokens, 0 for padding
    start_positions: np.ndarray  # int32 [N]: answer's first token, 0 ([CLS]) if not in window
    end_positions: np.ndarray  # int32 [N]: answer's last token, 0 ([CLS]) if not in window
    example_index: np.ndarray  # int32 [N]: index of the feature's example in `examples`
    token_char_spans: np.ndarray  # int32 [N, S, 2]: [start, end) in the context, else -1
    max_context: np.ndarray  # bool [N, S]: the token has the most context in this window

    def __len__(self) -> int:
        return len(self.input_ids)


class Candidate(NamedTuple):
    """A ranked answer of one example; the text is "" for the no-answer (null) candidate."""

    text: str
    probability: float  # softmax of the scores over the example's n-best list
    start_logit: float
    end_logit: float


# Readers ------------------------------------------------------------------------------------


def read_squad_json(path: str) -> list[QAExample]:
    """Examples of an official SQuAD v1.1 or v2.0 file (data -> paragraphs -> qas), local or
    remote (gs://...); a v2 question with `is_impossible` has no answers."""
    squad = _load_json(path)
    examples = []
    try:
        for article in squad["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    answers = [] if qa.get("is_impossible", False) else qa["answers"]
                    examples.append(
                        _example(
                            qa["id"],
                            qa["question"],
                            context,
                            [answer["text"] for answer in answers],
                            [answer["answer_start"] for answer in answers],
                            path,
                        )
                    )
    except (KeyError, TypeError) as error:
        raise UserError(
            f"{path} is not in the SQuAD JSON layout ({type(error).__name__}: {error}); give "
            "the official v1.1/v2.0 file: data -> paragraphs -> context and qas."
        ) from None
    return _unique(examples, path)


def read_jsonl(path: str) -> list[QAExample]:
    """Examples of a JSON-lines file in the Hugging Face `datasets` layout, local or remote.

    Each line is {"id", "question", "context", "answers": {"text": [...], "answer_start":
    [...]}}; empty answer lists mean no answer. Blank lines are skipped.
    """
    examples = []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
            answers = record["answers"]
            examples.append(
                _example(
                    record["id"],
                    record["question"],
                    record["context"],
                    list(answers["text"]),
                    list(answers["answer_start"]),
                    where,
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(
                f"{where} is not a SQuAD JSON object ({type(error).__name__}: {error}); give "
                'id, question, context and answers {"text": [...], "answer_start": [...]}.'
            ) from None
    return _unique(examples, path)


def example_from_tfds(features: Mapping[str, Any], *, origin: str = "TFDS") -> QAExample:
    """One example of TFDS `squad` (v1.1 or v2.0) as `tfds.as_numpy` gives it: strings as
    bytes, `answers` as {"text": bytes array, "answer_start": int32 array}; v2's
    `plausible_answers` are ignored."""
    answers = features["answers"]
    texts = [_decode(text) for text in answers["text"]]
    starts = [int(start) for start in answers["answer_start"]]
    if bool(features.get("is_impossible", False)):
        texts, starts = [], []
    return _example(
        _decode(features["id"]),
        _decode(features["question"]),
        _decode(features["context"]),
        texts,
        starts,
        origin,
    )


def load_tfds(name: str, *, split: str, data_dir: str | None = None) -> list[QAExample]:
    """Examples of an already prepared TFDS dataset such as "squad/v2.0" (nothing is
    downloaded); splits of `squad` are "train" and "validation"."""
    import tensorflow_datasets as tfds

    dataset, _ = sources.load_tfds(name, split=split, data_dir=data_dir)
    origin = f"tfds:{name}[{split}]"
    examples = [example_from_tfds(item, origin=origin) for item in tfds.as_numpy(dataset)]
    return _unique(examples, origin)


def read_examples(
    source: str, *, split: str = "train", data_dir: str | None = None
) -> list[QAExample]:
    """Examples of "tfds:NAME" (`split` and `data_dir` apply to it only), a `.jsonl` file in the
    Hugging Face layout, or a `.json` file in the official SQuAD layout."""
    if source.startswith("tfds:"):
        examples = load_tfds(source.removeprefix("tfds:"), split=split, data_dir=data_dir)
    elif source.endswith(".jsonl"):
        examples = read_jsonl(source)
    elif source.endswith(".json"):
        examples = read_squad_json(source)
    else:
        raise UserError(
            f"question answering data {source!r} is not 'tfds:NAME', a .jsonl nor a .json "
            "file; name one of those."
        )
    if not examples:
        raise UserError(f"{source} holds no questions; point it at SQuAD data.")
    return examples


def _example(
    id_: Any,
    question: Any,
    context: Any,
    texts: Sequence[Any],
    starts: Sequence[Any],
    origin: str,
) -> QAExample:
    """A checked example: every answer text is found at its `answer_start` in the context."""
    example = QAExample(
        str(id_), str(question), str(context), tuple(map(str, texts)), tuple(map(int, starts))
    )
    if len(example.answers) != len(example.answer_starts):
        raise UserError(
            f"example {example.id!r} in {origin} has {len(example.answers)} answer texts but "
            f"{len(example.answer_starts)} answer_start values; give one start per text."
        )
    for text, start in zip(example.answers, example.answer_starts, strict=True):
        found = example.context[start : start + len(text)] if start >= 0 else None
        if not text or found != text:
            raise UserError(
                f"example {example.id!r} in {origin}: answer {text!r} is not at "
                f"answer_start={start} of its context (which reads {found!r} there); fix the "
                "answer text or its answer_start."
            )
    return example


def _unique(examples: list[QAExample], origin: str) -> list[QAExample]:
    """The examples, checked to have distinct ids (predictions are keyed by id)."""
    seen = set()
    for example in examples:
        if example.id in seen:
            raise UserError(
                f"example id {example.id!r} appears more than once in {origin}; give each "
                "question its own id."
            )
        seen.add(example.id)
    return examples


def _decode(value: Any) -> str:
    """Text of a TFDS string (bytes in NumPy form) or of anything else."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _load_json(path: str) -> Any:
    try:
        with epath.Path(path).open("rb") as file:
            return json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(
            f"{path} cannot be read as JSON ({error}); give a UTF-8 SQuAD JSON file."
        ) from None


# Features -----------------------------------------------------------------------------------


class _Window(NamedTuple):
    """Context tokens [start, start + length) shown in one feature."""

    start: int
    length: int


def make_features(
    tokenizer: WordPiece | Tokenizer,
    examples: Sequence[QAExample],
    *,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    is_training: bool,
) -> QAFeatures:
    """One feature per context window of every example, in order (an example has at least one).

    The question keeps its first `max_query_length` tokens; the window takes what room is left
    and moves on by `doc_stride` tokens. With `is_training`, start/end positions mark the first
    answer in every window holding all of it, [CLS] elsewhere; without, they are all 0.
    """
    min_room = max_seq_length - max_query_length - 3
    if max_query_length < 1 or min_room < 1:
        raise UserError(
            f"max_seq_length={max_seq_length} leaves no room for context after "
            f"max_query_length={max_query_length} question tokens and [CLS] [SEP] [SEP]; raise "
            "max_seq_length or lower max_query_length."
        )
    if not 1 <= doc_stride <= min_room:
        raise UserError(
            f"doc_stride={doc_stride} must be between 1 and {min_room} (max_seq_length - "
            "max_query_length - 3) so that windows cover all the context; change doc_stride."
        )
    plans = []
    contexts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # SQuAD asks many per paragraph
    for index, example in enumerate(examples):
        question = tokenizer.encode(example.question)[:max_query_length]
        if example.context not in contexts:
            contexts[example.context] = _context_tokens(tokenizer, example.context)
        ids, chars = contexts[example.context]
        windows = _windows(len(ids), max_seq_length - len(question) - 3, doc_stride)
        best_window = _best_windows(windows, len(ids))
        answer = _answer_tokens(example, chars) if is_training else None
        for number, window in enumerate(windows):
            plans.append((index, question, ids, chars, window, best_window == number, answer))
    return _fill(plans, tokenizer, max_seq_length)


def _context_tokens(tokenizer: WordPiece | Tokenizer, context: str) -> tuple[np.ndarray, ...]:
    """Ids [T] and character spans [T, 2] of the context's tokens."""
    spans = token_spans(tokenizer, context)
    ids = np.array([span.id for span in spans], np.int32)
    chars = np.array([(span.start, span.end) for span in spans], np.int32).reshape(-1, 2)
    return ids, chars


def _windows(num_tokens: int, room: int, stride: int) -> list[_Window]:
    """Windows of at most `room` tokens, `stride` apart, the last one reaching the end.

    An empty context still gets one (empty) window, so every example has a feature to decode.
    """
    windows, start = [], 0
    while True:
        length = min(num_tokens - start, room)
        windows.append(_Window(start, length))
        if start + length >= num_tokens:
            return windows
        start += min(length, stride)


def _best_windows(windows: list[_Window], num_tokens: int) -> np.ndarray:
    """For every context token, the window where it has the most context (BERT's
    `_check_is_max_context`): the most tokens on its shorter side, plus 0.01 per window token
    to break ties toward longer windows, then toward the earlier window."""
    positions = np.arange(num_tokens)
    scores = np.full((len(windows), num_tokens), -np.inf)
    for number, (start, length) in enumerate(windows):
        inside = (positions >= start) & (positions < start + length)
        left, right = positions - start, start + length - 1 - positions
        scores[number] = np.where(inside, np.minimum(left, right) + 0.01 * length, -np.inf)
    return np.argmax(scores, axis=0)  # the first maximum, as BERT's strict ">"


def _answer_tokens(example: QAExample, chars: np.ndarray) -> tuple[int, int] | None:
    """First and last context token overlapping the first answer; None if there is none."""
    if not example.answers:
        return None
    start = example.answer_starts[0]
    end = start + len(example.answers[0])
    covering = np.flatnonzero((chars[:, 1] > start) & (chars[:, 0] < end))
    if not len(covering):  # an answer made only of characters the tokenizer drops
        return None
    return int(covering[0]), int(covering[-1])


def _fill(plans: list, tokenizer: WordPiece | Tokenizer, max_seq_length: int) -> QAFeatures:
    """The arrays of all planned features."""
    n, s = len(plans), max_seq_length
    input_ids = np.full((n, s), tokenizer.pad_id, np.int32)
    token_type_ids = np.zeros((n, s), np.int32)
    attention_mask = np.zeros((n, s), np.int32)
    start_positions = np.zeros(n, np.int32)
    end_positions = np.zeros(n, np.int32)
    example_index = np.zeros(n, np.int32)
    token_char_spans = np.full((n, s, 2), NOT_CONTEXT, np.int32)
    max_context = np.zeros((n, s), bool)
    for row, (index, question, ids, chars, window, is_best, answer) in enumerate(plans):
        offset = len(question) + 2  # where the window starts: after [CLS] question [SEP]
        first, last = window.start, window.start + window.length
        end = offset + window.length  # position of the final [SEP]
        input_ids[row, :offset] = [tokenizer.cls_id, *question, tokenizer.sep_id]
        input_ids[row, offset:end] = ids[first:last]
        input_ids[row, end] = tokenizer.sep_id
        token_type_ids[row, offset : end + 1] = 1
        attention_mask[row, : end + 1] = 1
        token_char_spans[row, offset:end] = chars[first:last]
        max_context[row, offset:end] = is_best[first:last]
        example_index[row] = index
        if answer is not None and first <= answer[0] and answer[1] < last:
            start_positions[row] = answer[0] - first + offset
            end_positions[row] = answer[1] - first + offset
    return QAFeatures(
        input_ids,
        token_type_ids,
        attention_mask,
        start_positions,
        end_positions,
        example_index,
        token_char_spans,
        max_context,
    )


# Decoding -----------------------------------------------------------------------------------


class _Span(NamedTuple):
    """A scored answer candidate (the null one has text "")."""

    score: float
    text: str
    start_logit: float
    end_logit: float


def best_answers(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, str]:
    """Example id -> predicted answer text ("" for no answer in v2) from [N, S] logits.

    v1.1 takes the best-scoring span. v2.0 predicts "" when the null score (the lowest
    start_logit[0] + end_logit[0] over the example's features) beats the best span's score by
    more than `null_score_diff_threshold`.
    """
    answers = {}
    for example, spans, null in _ranked(
        examples, features, start_logits, end_logits, n_best_size, max_answer_length
    ):
        if not spans:
            answers[example.id] = ""
        elif version_2 and null.score - spans[0].score > null_score_diff_threshold:
            answers[example.id] = ""
        else:
            answers[example.id] = spans[0].text
    return answers


def nbest(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
) -> dict[str, list[Candidate]]:
    """Example id -> up to `n_best_size` distinct answers, best first, with probabilities (as
    BERT's nbest_predictions.json); in v2 the null answer "" is always among them."""
    result = {}
    for example, spans, null in _ranked(
        examples, features, start_logits, end_logits, n_best_size, max_answer_length
    ):
        if version_2:
            spans = sorted([*spans, null], key=lambda span: -span.score)[:n_best_size]
            if null not in spans:
                spans.append(null)
        probabilities = _softmax([span.score for span in spans])
        result[example.id] = [
            Candidate(span.text, p, span.start_logit, span.end_logit)
            for span, p in zip(spans, probabilities, strict=True)
        ]
    return result


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
