"""Evaluation metrics against independent computations: brute force, scipy, hand counts."""

import itertools
import re

import numpy as np
import pytest
import scipy.stats

from bert_jax.errors import UserError
from bert_jax.scores import (
    accuracy,
    entity_f1,
    entity_spans,
    matthews_corrcoef,
    pearson,
    precision_recall_f1,
    roc_auc,
    spearman,
    squad_scores,
)

# Hand-counted 3-class example, pairs (label, prediction):
# (0,0) (1,2) (2,2) (2,1) (1,1) (0,0) (2,0) (1,1)
#   class 0: tp 2, fp 1, fn 0 -> P 2/3, R 1,   F1 4/5
#   class 1: tp 2, fp 1, fn 1 -> P 2/3, R 2/3, F1 2/3
#   class 2: tp 1, fp 1, fn 2 -> P 1/2, R 1/3, F1 2/5
LABELS = [0, 1, 2, 2, 1, 0, 2, 1]
PREDICTIONS = [0, 2, 2, 1, 1, 0, 0, 1]


def test_accuracy():
    assert accuracy(LABELS, PREDICTIONS) == pytest.approx(5 / 8)
    assert accuracy(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]])) == 0.75
    assert isinstance(accuracy([1], [1]), float)


@pytest.mark.parametrize("a, b", [([1, 0], [1]), ([], [])])
def test_mismatched_or_empty_inputs_are_user_errors(a, b):
    with pytest.raises(UserError):
        accuracy(a, b)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"average": "binary", "positive_label": 2}, (1 / 2, 1 / 3, 2 / 5)),
        ({"average": "binary", "positive_label": 0}, (2 / 3, 1.0, 4 / 5)),
        ({"average": "macro"}, ((2 / 3 + 2 / 3 + 1 / 2) / 3, 2 / 3, (4 / 5 + 2 / 3 + 2 / 5) / 3)),
        # Class 3 never occurs: it still counts in the macro mean, with zeros.
        (
            {"average": "macro", "num_labels": 4},
            ((2 / 3 + 2 / 3 + 1 / 2) / 4, 2 / 4, (4 / 5 + 2 / 3 + 2 / 5) / 4),
        ),
        # Micro: tp 5, fp 3, fn 3 summed over classes.
        ({"average": "micro"}, (5 / 8, 5 / 8, 5 / 8)),
    ],
)
def test_precision_recall_f1_hand_counts(kwargs, expected):
    got = precision_recall_f1(LABELS, PREDICTIONS, **kwargs)
    assert got == pytest.approx(dict(zip(("precision", "recall", "f1"), expected, strict=True)))
    assert all(isinstance(v, float) for v in got.values())


def test_binary_default_positive_label_and_zero_division():
    # tp 2, fp 1, fn 1 for label 1.
    got = precision_recall_f1([1, 1, 0, 1, 0], [1, 1, 1, 0, 0], average="binary")
    assert got == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    # No positive predicted: precision is 0/0, counted as 0, so F1 is 0 too.
    got = precision_recall_f1([1, 0, 1], [0, 0, 0], average="binary")
    assert got == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_macro_without_num_labels_uses_labels_seen_in_either_input():
    # Label 5 appears only as a prediction: it is a class with P = R = F1 = 0.
    got = precision_recall_f1([0, 0, 1], [0, 5, 1], average="macro")
    expected = {"precision": (1 + 1 + 0) / 3, "recall": (1 / 2 + 1) / 3, "f1": (2 / 3 + 1) / 3}
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("kwargs", [{"average": "weighted"}, {"average": "macro", "num_labels": 2}])
def test_precision_recall_f1_bad_arguments(kwargs):
    with pytest.raises(UserError):
        precision_recall_f1(LABELS, PREDICTIONS, **kwargs)


def test_mcc_binary_matches_np_corrcoef():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 2, size=50)
        predictions = np.where(rng.random(50) < 0.7, labels, 1 - labels)
        expected = np.corrcoef(labels, predictions)[0, 1]
        assert matthews_corrcoef(labels, predictions) == pytest.approx(expected)


def test_mcc_three_classes_by_hand():
    # Confusion matrix (rows true, columns predicted) [[4, 1, 0], [2, 2, 1], [0, 0, 2]]:
    # n 12, trace 8, true counts (5, 5, 2), predicted counts (6, 3, 3).
    # (8*12 - (30+15+6)) / sqrt((144 - (36+9+9)) * (144 - (25+25+4))) = 45 / 90.
    cells = {(0, 0): 4, (0, 1): 1, (1, 0): 2, (1, 1): 2, (1, 2): 1, (2, 2): 2}
    pairs = [pair for pair, count in cells.items() for _ in range(count)]
    labels, predictions = zip(*pairs, strict=True)
    assert matthews_corrcoef(labels, predictions) == pytest.approx(0.5)
    # Label values need not be 0..k-1: the same matrix with other names.
    names = np.array([7, -1, 30])
    assert matthews_corrcoef(names[list(labels)], names[list(predictions)]) == pytest.approx(0.5)


def test_mcc_multiclass_matches_one_hot_covariances():
    # Gorodkin's R_K is the correlation of one-hot matrices: summed covariances over classes.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=200)
    predictions = np.where(rng.random(200) < 0.5, labels, rng.integers(0, 4, size=200))
    x, y = np.eye(4)[labels], np.eye(4)[predictions]

    def cov(a, b):
        return sum(np.cov(a[:, k], b[:, k])[0, 1] for k in range(4))

    expected = cov(x, y) / np.sqrt(cov(x, x) * cov(y, y))
    assert matthews_corrcoef(labels, predictions) == pytest.approx(expected)


def test_mcc_undefined_is_zero():
    assert matthews_corrcoef([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0
    assert matthews_corrcoef([0, 1, 2], [2, 2, 2]) == 0.0
    assert matthews_corrcoef([0, 1, 0], [0, 1, 0]) == 1.0
    assert matthews_corrcoef([0, 1, 0], [1, 0, 1]) == -1.0


def test_pearson_and_spearman_match_scipy():
    rng = np.random.default_rng(2)
    for _ in range(10):
        x = rng.normal(size=40)
        y = 0.5 * x + rng.normal(size=40)
        assert pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y)[0])
        assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0])
        # Many ties: small integer values (STS-B-like scores rounded to halves).
        a, b = rng.integers(0, 5, size=40), np.round(rng.uniform(0, 5, size=40) * 2) / 2
        assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b)[0])
        assert pearson(a, b) == pytest.approx(scipy.stats.pearsonr(a, b)[0])


def test_spearman_is_rank_based():
    assert spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 8, 27, 1000]) < 0.9
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert np.isnan(spearman([1, 2, 3], [5, 5, 5]))


def brute_force_auc(labels, scores):
    positives = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    negatives = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(
        1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)
    )
    return wins / (len(positives) * len(negatives))


def test_roc_auc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(3)
    for size in (2, 7, 60):
        for _ in range(10):
            labels = rng.integers(0, 2, size=size)
            labels[:2] = (0, 1)  # both classes present
            scores = np.round(rng.normal(size=size) + labels, 0)  # few distinct values: ties
            assert roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))


def test_roc_auc_extremes():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([True, False], [3.0, 1.0]) == 1.0


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], [0, 2, 1]])
def test_roc_auc_needs_both_binary_classes(labels):
    with pytest.raises(UserError, match="roc_auc"):
        roc_auc(labels, np.arange(len(labels), dtype=float))


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),  # entity at the end
        (["I-PER", "I-PER", "O"], {("PER", 0, 2)}),  # I- with no B- starts an entity
        (["O", "I-ORG"], {("ORG", 1, 2)}),  # stray I- at the end
        (["B-PER", "I-LOC", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 3)}),  # type change on I-
        (["I-PER", "I-LOC", "B-LOC", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 2), ("LOC", 2, 4)}),
        (["B-PER", "B-PER", "I-PER"], {("PER", 0, 1), ("PER", 1, 3)}),  # B- always starts one
        (["B-MISC", "O", "I-MISC"], {("MISC", 0, 1), ("MISC", 2, 3)}),  # O breaks the entity
        (["O", "O"], set()),
        ([], set()),
    ],
)
def test_entity_spans(tags, spans):
    assert entity_spans(tags) == spans


@pytest.mark.parametrize("tag", ["E-PER", "B", "B-", "PER", "o"])
def test_entity_spans_rejects_non_bio_tags(tag):
    with pytest.raises(UserError, match=re.escape(repr(tag))):
        entity_spans(["O", tag])


def test_entity_f1_by_hand():
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC"],  # PER(0,2) LOC(3,4)
        ["O", "B-ORG", "I-ORG"],  # ORG(1,3)
        ["B-MISC", "O"],  # MISC(0,1)
        ["B-PER", "I-PER"],  # PER(0,2)
    ]
    predicted = [
        ["B-PER", "I-PER", "O", "B-ORG"],  # PER right, ORG wrong type
        ["O", "I-ORG", "I-ORG"],  # right: I- starts the entity
        ["B-MISC", "B-MISC"],  # one right, one spurious
        ["B-PER", "O"],  # wrong end: no partial credit
    ]
    # correct 3, gold 5, predicted 6.
    assert entity_f1(gold, predicted) == pytest.approx(
        {"precision": 3 / 6, "recall": 3 / 5, "f1": 2 * 3 / (5 + 6)}
    )


def test_entity_f1_seqeval_readme_example():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    predicted = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert entity_f1(gold, predicted) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_entity_f1_does_not_join_entities_across_sentences():
    gold = [["O", "B-PER"], ["I-PER", "O"]]  # two entities, one per sentence
    predicted = [["O", "B-PER"], ["B-PER", "O"]]
    assert entity_f1(gold, predicted) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert entity_f1([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


@pytest.mark.parametrize("gold, predicted", [([["O"]], [["O"], ["O"]]), ([["O", "O"]], [["O"]])])
def test_entity_f1_length_mismatch(gold, predicted):
    with pytest.raises(UserError):
        entity_f1(gold, predicted)


@pytest.mark.parametrize(
    "prediction, gold, exact, f1",
    [
        ("The Eiffel Tower!", "eiffel tower", 1.0, 1.0),  # case, article, punctuation
        ("an  apple.", "Apple", 1.0, 1.0),  # article, extra spaces
        ("Denver Broncos", "the Denver-Broncos", 0.0, 0.0),  # '-' dropped, not split on
        ("theory", "ory", 0.0, 0.0),  # articles only as whole words
        ("A", "the", 1.0, 1.0),  # both normalise to "", dropped as a gold, so "no answer"
        # pred [cat sat on mat], gold [cat on mat]: 3 common, P 3/4, R 1.
        ("the cat sat on the mat", "a cat on a mat", 0.0, 6 / 7),
        # Repeated tokens count as often as both sides have them: 2 common, P 1, R 2/3.
        ("cat cat", "cat cat dog", 0.0, 4 / 5),
        # ... and no more often: 1 common, P 1/3, R 1/2.
        ("cat cat cat", "cat dog", 0.0, 2 / 5),
        ("Paris", "", 0.0, 0.0),
    ],
)
def test_squad_single_answer(prediction, gold, exact, f1):
    answers = {"q": [gold]}
    assert squad_scores({"q": prediction}, answers) == pytest.approx(
        {"exact_match": exact, "f1": f1}
    )


def test_squad_max_over_answers_and_averaging():
    answers = {
        "a": ["Denver Broncos", "The Broncos", "Broncos"],  # max: EM 1 via "broncos"
        "b": ["Santa Clara, California", "Levi's Stadium"],  # pred "Levi Stadium": F1 1/2
        "c": [],  # v2.0 no-answer, predicted "": EM 1, F1 1
        "d": [],  # no-answer but a span predicted: 0, 0
        "e": ["1990"],  # missing prediction counts as "": 0, 0
        "f": [],  # missing prediction on a no-answer question: "" is right
        "g": ["the", "Paris"],  # "the" normalises to "" and is dropped, so "" scores 0
    }
    predictions = {
        "a": "the broncos.",
        "b": "Levi Stadium",
        "c": "",
        "d": "Denver",
        "g": "",
        "x": "?",
    }
    # "levis stadium" vs "levi stadium": one common token of two each.
    assert squad_scores(predictions, answers) == pytest.approx(
        {"exact_match": (1 + 0 + 1 + 0 + 0 + 1 + 0) / 7, "f1": (1 + 0.5 + 1 + 0 + 0 + 1 + 0) / 7}
    )


def test_squad_no_questions():
    with pytest.raises(UserError):
        squad_scores({"a": "x"}, {})


def test_pretraining_sentence_majority_is_the_commoner_labels_share():
    import jax.numpy as jnp

    from bert_jax.tasks.pretraining import pretraining_loss, summarize

    outputs = {  # two masked positions over a 3-token vocabulary; four sentence pairs
        "mlm_logits": jnp.asarray([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]] * 4),
        "sentence_logits": jnp.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
    }
    batch = {
        "masked_lm_ids": jnp.asarray([[0, 2]] * 4),
        "masked_lm_weights": jnp.ones((4, 2)),
        "next_sentence_labels": jnp.asarray([1, 1, 1, 0]),  # 1: random next
    }
    _, sums = pretraining_loss(outputs, batch)
    out = summarize({k: float(v) for k, v in sums.items()}, 1, "nsp")
    assert out["mlm_accuracy"] == 0.5  # position 0 right, position 1 wrong, in every row
    assert out["nsp_accuracy"] == 0.5  # rows 2 and 3 right
    assert out["nsp_majority"] == 0.75  # always "random next" scores 3 of 4
