"""SQuAD features: the `[CLS] question [SEP] window [SEP]` layout, sliding windows, and BERT's
max-context rule."""

import numpy as np
import pytest

from bert_jax.data.offsets import token_spans
from bert_jax.data.squad_features import make_features
from bert_jax.errors import UserError
from squad_cases import (  # noqa: F401 - fixtures
    LONG_CONTEXT,
    PASSAGES,
    QUESTIONS,
    passage_examples,
    peaked_logits,
    qa,
    sentencepiece,
    tokenizer,
    wordpiece,
)

# Features -----------------------------------------------------------------------------------


def test_feature_layout(wordpiece):
    """[CLS] question [SEP] window [SEP] [PAD]..., the question cut to max_query_length."""
    question = "which river flows through london and who kept the harbour"
    long, short = qa("l", question, LONG_CONTEXT, "The"), qa("s", "Why?", PASSAGES[1][0], "The")
    features = make_features(
        wordpiece,
        [long, short],
        max_seq_length=40,
        doc_stride=8,
        max_query_length=5,
        is_training=True,
    )
    assert features.input_ids.shape == (len(features), 40)
    assert features.token_char_spans.shape == (len(features), 40, 2)
    assert list(features.example_index) == [0] * (len(features) - 1) + [1]
    for name in ("input_ids", "token_type_ids", "attention_mask", "start_positions"):
        assert getattr(features, name).dtype == np.int32
    assert features.max_context.dtype == bool

    # A full first window of the long context.
    ids = wordpiece.encode(question)[:5]
    assert len(wordpiece.encode(question)) > 5
    context = token_spans(wordpiece, LONG_CONTEXT)
    room = 40 - 5 - 3
    assert list(features.input_ids[0]) == [
        wordpiece.cls_id,
        *ids,
        wordpiece.sep_id,
        *(t.id for t in context[:room]),
        wordpiece.sep_id,
    ]
    assert list(features.token_type_ids[0]) == [0] * 7 + [1] * (room + 1)
    assert features.attention_mask[0].all()
    spans = features.token_char_spans[0]
    assert (spans[:7] == -1).all() and (spans[-1] == -1).all()
    assert [tuple(s) for s in spans[7:-1]] == [(t.start, t.end) for t in context[:room]]

    # The short context in one padded window.
    ids = wordpiece.encode("Why?")
    context = token_spans(wordpiece, PASSAGES[1][0])
    used = 1 + len(ids) + 1 + len(context) + 1
    assert used < 40
    assert list(features.input_ids[-1]) == [
        wordpiece.cls_id,
        *ids,
        wordpiece.sep_id,
        *(t.id for t in context),
        wordpiece.sep_id,
        *[wordpiece.pad_id] * (40 - used),
    ]
    expected_types = [0] * (len(ids) + 2) + [1] * (len(context) + 1) + [0] * (40 - used)
    assert list(features.token_type_ids[-1]) == expected_types
    assert list(features.attention_mask[-1]) == [1] * used + [0] * (40 - used)
    assert (features.token_char_spans[-1, used - 1 :] == -1).all()
    assert features.max_context[-1].sum() == len(context)
    assert features.start_positions[-1] == len(ids) + 2  # "The" opens the context


def test_windows_advance_by_doc_stride_and_count_each_token_once(tokenizer):
    example = qa("w1", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    stride = 8
    features = make_features(
        tokenizer,
        [example],
        max_seq_length=32,
        doc_stride=stride,
        max_query_length=8,
        is_training=False,
    )
    context = token_spans(tokenizer, LONG_CONTEXT)
    windows = [spans[spans[:, 0] >= 0] for spans in features.token_char_spans]
    assert len(windows) >= 4
    for previous, following in zip(windows, windows[1:], strict=False):
        assert (following[0] == previous[stride]).all()
    assert (windows[-1][-1] == (context[-1].start, context[-1].end)).all()
    counted = features.token_char_spans[features.max_context]
    assert sorted(map(tuple, counted)) == sorted((t.start, t.end) for t in context)
    assert not (features.start_positions.any() or features.end_positions.any())


def bert_is_max_context(windows: list[tuple[int, int]], current: int, position: int) -> bool:
    """`_check_is_max_context` of google-research/bert's run_squad.py, windows (start, length)."""
    best_score, best_index = None, None
    for index, (start, length) in enumerate(windows):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return current == best_index


@pytest.mark.parametrize("doc_stride", [4, 5, 7])  # 4: ties, broken by window length and order
def test_max_context_matches_bert(wordpiece, doc_stride):
    example = qa("m", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    features = make_features(
        wordpiece,
        [example],
        max_seq_length=30,
        doc_stride=doc_stride,
        max_query_length=8,
        is_training=False,
    )
    context = [(t.start, t.end) for t in token_spans(wordpiece, LONG_CONTEXT)]
    windows = []
    for spans in features.token_char_spans:
        inside = [tuple(s) for s in spans if s[0] >= 0]
        windows.append((context.index(inside[0]), len(inside)))
    for row, (start, length) in enumerate(windows):
        offset = int(np.flatnonzero(features.token_char_spans[row, :, 0] >= 0)[0])
        expected = [bert_is_max_context(windows, row, start + i) for i in range(length)]
        assert list(features.max_context[row, offset : offset + length]) == expected


def test_bad_lengths_are_user_errors(wordpiece):
    example = qa("e", "q", "some text", "text")
    with pytest.raises(UserError, match="max_seq_length=20"):
        make_features(
            wordpiece,
            [example],
            max_seq_length=20,
            max_query_length=17,
            doc_stride=1,
            is_training=True,
        )
    with pytest.raises(UserError, match="doc_stride=10"):
        make_features(
            wordpiece,
            [example],
            max_seq_length=20,
            max_query_length=8,
            doc_stride=10,
            is_training=True,
        )
