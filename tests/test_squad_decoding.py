"""SQuAD decoding: logits peaked at the training targets give back the exact gold answer text
with both tokenizers; n-best ranking and the v2.0 no-answer rule."""

import numpy as np
import pytest

from bert_jax.data.squad_decoding import best_answers, nbest
from bert_jax.data.squad_examples import QAExample
from bert_jax.data.squad_features import make_features
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

# Decoding -----------------------------------------------------------------------------------


def test_round_trip_gives_the_exact_answers(tokenizer):
    examples = passage_examples()
    features = make_features(
        tokenizer,
        examples,
        max_seq_length=64,
        doc_stride=16,
        max_query_length=12,
        is_training=True,
    )
    assert (features.start_positions > 0).sum() >= len(examples)
    predicted = best_answers(examples, features, *peaked_logits(features))
    assert predicted == {example.id: example.answers[0] for example in examples}


def test_answer_in_a_later_window_round_trips(tokenizer):
    example = qa("long", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    other = qa("start", "What opened?", LONG_CONTEXT, "The harbour")
    features = make_features(
        tokenizer,
        [other, example],
        max_seq_length=32,
        doc_stride=8,
        max_query_length=8,
        is_training=True,
    )
    rows = np.flatnonzero(features.example_index == 1)
    assert len(rows) >= 4
    answered = rows[features.start_positions[rows] > 0]
    assert len(answered) and answered.min() > rows[0]  # not in the example's first window
    first_window = features.token_char_spans[rows[0]]
    assert first_window[:, 1].max() <= example.answer_starts[0]
    predicted = best_answers([other, example], features, *peaked_logits(features))
    assert predicted == {"long": "Zoë Müller", "start": "The harbour"}


def test_version_2_no_answer_decodes_to_empty(tokenizer):
    context, answers = PASSAGES[0]
    examples = [
        qa("yes", "When did it open?", context, answers[1]),
        QAExample("no", "When did it close?", context, (), ()),
        QAExample("no-long", "Who sold it?", LONG_CONTEXT, (), ()),
    ]
    features = make_features(
        tokenizer,
        examples,
        max_seq_length=32,
        doc_stride=8,
        max_query_length=8,
        is_training=True,
    )
    no_answer_rows = features.example_index > 0
    assert not features.start_positions[no_answer_rows].any()
    logits = peaked_logits(features)
    predicted = best_answers(examples, features, *logits, version_2=True)
    assert predicted == {"yes": "1998", "no": "", "no-long": ""}
    # A threshold above the null margin (20 - 0) answers anyway; v1 never answers "".
    forced = best_answers(examples, features, *logits, version_2=True, null_score_diff_threshold=25)
    assert forced["no"] != "" and forced["yes"] == "1998"
    assert best_answers(examples, features, *logits)["no"] != ""


def test_decoding_rules(wordpiece):
    """Spans must lie in the context, end after they start and fit max_answer_length."""
    example = qa("r", "Where does the river flow?", PASSAGES[1][0], "London (England)")
    features = make_features(
        wordpiece,
        [example],
        max_seq_length=64,
        doc_stride=16,
        max_query_length=12,
        is_training=True,
    )
    start, end = peaked_logits(features)
    length = int(features.end_positions[0] - features.start_positions[0] + 1)
    assert length == 4  # london ( england )
    assert best_answers([example], features, start, end, max_answer_length=3)["r"] != (
        "London (England)"
    )
    start[0, 1:3] = end[0, 1:3] = 100.0  # question tokens never count
    start[0, -1] = 100.0  # nor does padding
    assert best_answers([example], features, start, end)["r"] == "London (England)"
    reversed_start, reversed_end = end.copy(), start.copy()
    answer = best_answers([example], features, reversed_start, reversed_end)["r"]
    assert answer != "London (England)"  # start after end is never a candidate
    with pytest.raises(ValueError, match="do not match"):
        best_answers([example], features, start[:, :10], end)


def test_a_start_outside_its_max_context_window_is_ignored(wordpiece):
    example = qa("x", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    features = make_features(
        wordpiece,
        [example],
        max_seq_length=32,
        doc_stride=8,
        max_query_length=8,
        is_training=True,
    )
    start, end = peaked_logits(features)
    in_context = features.token_char_spans[:, :, 0] >= 0
    row, position = np.argwhere(in_context & ~features.max_context)[0]
    start[row, position] = 100.0
    ranked = nbest([example], features, start, end)["x"]
    assert ranked[0].text == "Zoë Müller" and ranked[0].start_logit == 10.0
    features.max_context[row, position] = True
    assert nbest([example], features, start, end)["x"][0].start_logit == 100.0


def test_nbest_ranks_with_probabilities(sentencepiece):
    context, answers = PASSAGES[2]
    examples = [qa("n", "How much?", context, answers[0])]
    features = make_features(
        sentencepiece,
        examples,
        max_seq_length=64,
        doc_stride=16,
        max_query_length=12,
        is_training=True,
    )
    start, end = peaked_logits(features)
    for version_2 in (False, True):
        ranked = nbest(examples, features, start, end, n_best_size=5, version_2=version_2)["n"]
        assert ranked[0].text == "$4.5 million"
        assert ranked[0].start_logit == ranked[0].end_logit == 10.0
        probabilities = [c.probability for c in ranked]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0)
        assert len({c.text for c in ranked}) == len(ranked)
        assert ("" in {c.text for c in ranked}) == version_2
        assert len(ranked) <= 5 + version_2
