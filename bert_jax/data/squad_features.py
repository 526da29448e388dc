"""SQuAD examples cut into fixed-length model inputs, as `run_squad.py` of google-research/bert
does: each feature is `[CLS] question [SEP] window [SEP]`, the windows slide over the context
`doc_stride` tokens at a time, and the training target is the answer's first and last token in
the window ([CLS], position 0, when the window does not hold the whole answer or there is none).
Each context token keeps the character span it came from, and is marked in the window where it
has the most context around it, for decoding."""

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from bert_jax.data.offsets import token_spans
from bert_jax.data.sentencepiece import SentencePiece
from bert_jax.data.squad_examples import QAExample
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

NOT_CONTEXT = -1
"""Character span entry of question, special and padding tokens."""


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


class _Window(NamedTuple):
    """Context tokens [start, start + length) shown in one feature."""

    start: int
    length: int


def make_features(
    tokenizer: WordPiece | SentencePiece,
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


def _context_tokens(tokenizer: WordPiece | SentencePiece, context: str) -> tuple[np.ndarray, ...]:
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


def _fill(plans: list, tokenizer: WordPiece | SentencePiece, max_seq_length: int) -> QAFeatures:
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
