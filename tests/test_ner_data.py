"""NER data: reading CoNLL, JSON lines and TFDS examples, and encoding tagged sentences so that
decoding the gold labels gives the tags back, with WordPiece and with SentencePiece."""

import itertools
import json

import numpy as np
import pytest

from bert_jax.data import ner
from bert_jax.data.sentencepiece import SPECIAL_TOKENS, SentencePiece
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

CONLL = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER


-DOCSTART- -X- -X- O
BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""

# Words that split into several WordPiece pieces, punctuation, an empty word and a single piece.
SENTENCES = [
    (["Kathmandu", "welcomed", "Reykjavik", "."], ["B-LOC", "O", "B-LOC", "O"]),
    (["Dmitri", "Fujimoto", "joined", "Initech", "today"], ["B-PER", "I-PER", "O", "B-ORG", "O"]),
    (["the", "\x00", "U.N.", "met"], ["O", "O", "B-ORG", "O"]),
    (["a"], ["B-MISC"]),
]
MAX_SEQ_LENGTH = 24


def wordpiece() -> WordPiece:
    """A vocabulary in which most words of SENTENCES need two to four pieces."""
    vocab = [
        *SPECIAL_TOKENS,
        *"abcdefghijklmnopqrstuvwxyz.",
        *["kath", "##man", "##du", "welcome", "##d", "rey", "##k", "##ja", "##vik", "dmitri"],
        *["fuji", "##moto", "join", "##ed", "init", "##ech", "today", "the", "met", "u", "n"],
        *(f"##{letter}" for letter in "abcdefghijklmnopqrstuvwxyz"),
    ]
    return WordPiece(vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def sentencepiece() -> SentencePiece:
    """A 200-piece BPE model of made-up sentences: too small to hold most words whole."""
    syllables = ["ka", "th", "man", "du", "rey", "vik", "fu", "ji", "mo", "to", "ni", "tech"]
    words = ["".join(pair) for pair in itertools.permutations(syllables, 2)]
    rotated = [words[(i + 5) % len(words)] + " " + words[(i + 9) % len(words)] for i in range(132)]
    sentences = [
        f"{word} {pair} welcomed today ." for word, pair in zip(words, rotated, strict=True)
    ]
    sentences += [f"The {word.capitalize()} met U.N. staff ." for word in words]
    return SentencePiece.train([sentences], vocab_size=200)


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_read_conll_skips_docstart_and_splits_at_blank_lines(tmp_path):
    sentences = ner.read_conll(write(tmp_path, "train.txt", CONLL))
    assert sentences == [
        (["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
        (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
        (["BRUSSELS", "1996-08-22"], ["B-LOC", "O"]),
    ]
    assert ner.read_tagged(str(tmp_path / "train.txt"), split="ignored") == sentences


def test_read_conll_names_the_line_with_one_column(tmp_path):
    path = write(tmp_path, "bad.txt", "EU B-ORG\nrejects\n")
    with pytest.raises(UserError, match=r"bad\.txt, line 2: 'rejects' has one column"):
        ner.read_conll(path)


def test_read_jsonl_maps_integer_tags_through_label_names(tmp_path):
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    records = [
        {"id": "0", "tokens": ["Peter", "Blackburn", "in", "Paris"], "ner_tags": [1, 2, 0, 3]},
        {"id": "1", "tokens": ["Hi"], "ner_tags": ["O"]},
    ]
    path = write(tmp_path, "train.jsonl", "\n".join(map(json.dumps, records)) + "\n\n")
    expected = [
        (["Peter", "Blackburn", "in", "Paris"], ["B-PER", "I-PER", "O", "B-LOC"]),
        (["Hi"], ["O"]),
    ]
    assert ner.read_jsonl(path, label_names=names) == expected
    assert ner.read_tagged(path, label_names=names) == expected
    with pytest.raises(UserError, match="line 1.*no label names"):
        ner.read_jsonl(path)
    with pytest.raises(UserError, match="line 1.*keys 'words' and 'ner_tags'"):
        ner.read_jsonl(path, tokens_key="words", label_names=names)


def test_tfds_example_as_conll2003_yields_it():
    # tfds.as_numpy gives conll2003's Sequence(Text) as object arrays of bytes and its
    # Sequence(ClassLabel) features as int64 arrays.
    example = {
        "tokens": np.array([b"EU", b"rejects", b"M\xc3\xbcller"], dtype=object),
        "pos": np.array([22, 42, 22], np.int64),
        "chunks": np.array([11, 21, 11], np.int64),
        "ner": np.array([3, 0, 1], np.int64),
    }
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    words, tags = ner.tfds_example_to_sentence(example, names)
    assert (words, tags) == (["EU", "rejects", "Müller"], ["B-ORG", "O", "B-PER"])
    assert all(type(word) is str for word in words)


def test_tfds_conll2003_features_are_tokens_and_ner_class_labels():
    from tensorflow_datasets.core.dataset_builders.conll import conll_dataset_builder_utils

    features = conll_dataset_builder_utils.CONLL_2003_ORDERED_FEATURES
    assert ner._class_names(features["ner"])[:3] == ["O", "B-PER", "I-PER"]
    assert ner._class_names(features["tokens"]) is None


def test_label_list_puts_o_first():
    sentences = [(["a", "b"], ["I-PER", "B-PER"]), (["c", "d"], ["O", "B-LOC"])]
    assert ner.label_list(sentences) == ["O", "B-LOC", "B-PER", "I-PER"]
    assert ner.label_list([(["a"], ["B-X"])]) == ["O", "B-X"]


def round_trip(tokenizer, sentences) -> None:
    """Decoding the gold labels as predictions gives every sentence's tags back."""
    labels = ner.label_list(sentences)
    label_to_id = {label: index for index, label in enumerate(labels)}
    batch = ner.encode_sentences(tokenizer, sentences, label_to_id, MAX_SEQ_LENGTH)
    for key, array in batch.items():
        assert array.shape == (len(sentences), MAX_SEQ_LENGTH), key
        assert array.dtype == np.int32, key
    for row, (words, tags) in enumerate(sentences):
        single = ner.encode_sentence(tokenizer, words, tags, label_to_id, MAX_SEQ_LENGTH)
        for key, array in single.items():
            np.testing.assert_array_equal(array, batch[key][row], err_msg=key)
        gold = np.where(single["labels"] >= 0, single["labels"], 0)
        assert ner.decode_tags(len(words), single["word_starts"], gold, labels) == tags
        check_layout(tokenizer, words, single, label_to_id, tags)


def check_layout(tokenizer, words, encoded, label_to_id, tags) -> None:
    """[CLS] then each word's own tokens then [SEP]; labels only on first tokens."""
    pieces = [tokenizer.encode(word) for word in words]
    expected = [tokenizer.cls_id, *itertools.chain(*pieces), tokenizer.sep_id]
    length = len(expected)
    assert encoded["input_ids"][:length].tolist() == expected
    assert (encoded["input_ids"][length:] == tokenizer.pad_id).all()
    assert encoded["attention_mask"].tolist() == [1] * length + [0] * (MAX_SEQ_LENGTH - length)
    assert not encoded["token_type_ids"].any()
    starts = np.cumsum([1] + [len(p) for p in pieces])[:-1]
    expected_labels = np.full(MAX_SEQ_LENGTH, -1)
    expected_starts = np.full(MAX_SEQ_LENGTH, -1)
    for index, (start, piece, tag) in enumerate(zip(starts, pieces, tags, strict=True)):
        if piece:
            expected_labels[start] = label_to_id[tag]
            expected_starts[index] = start
    np.testing.assert_array_equal(encoded["labels"], expected_labels)
    np.testing.assert_array_equal(encoded["word_starts"], expected_starts)


def test_wordpiece_round_trip():
    tokenizer = wordpiece()
    assert len(tokenizer.encode("Reykjavik")) == 4  # words really split into several pieces
    assert tokenizer.encode("\x00") == []  # and one word has no token at all
    round_trip(tokenizer, SENTENCES)


def test_word_without_tokens_decodes_as_o():
    label_to_id = {"O": 0, "B-LOC": 1}
    encoded = ner.encode_sentence(wordpiece(), ["\x00", "a"], ["B-LOC", "B-LOC"], label_to_id, 8)
    assert encoded["word_starts"].tolist() == [-1, 1, -1, -1, -1, -1, -1, -1]
    assert encoded["labels"].tolist() == [-1, 1, -1, -1, -1, -1, -1, -1]
    assert ner.decode_tags(2, encoded["word_starts"], np.ones(8), ["O", "B-LOC"]) == ["O", "B-LOC"]


def test_sentencepiece_round_trip(sentencepiece):
    words = [word for sentence, _ in SENTENCES for word in sentence]
    assert max(len(sentencepiece.encode(word)) for word in words) >= 3
    round_trip(sentencepiece, [*SENTENCES, (["", "met"], ["O", "B-LOC"])])


def test_truncation_cuts_words_and_decodes_them_as_o():
    tokenizer = wordpiece()
    words = ["Kathmandu", "welcomed", "Reykjavik", "Dmitri", "Fujimoto", "Initech", "today"]
    tags = ["B-LOC", "O", "B-LOC", "B-PER", "I-PER", "B-ORG", "O"]
    labels = ner.label_list([(words, tags)])
    label_to_id = {label: index for index, label in enumerate(labels)}
    # Pieces: kath ##man ##du | welcome ##d | rey ##k ##ja ##vik | dmitri | fuji ##moto | ...
    # Ten positions: [CLS], eight tokens, [SEP]; Reykjavik loses its last piece.
    encoded = ner.encode_sentence(tokenizer, words, tags, label_to_id, max_seq_length=10)
    assert encoded["input_ids"][-1] == tokenizer.sep_id
    assert encoded["attention_mask"].all()
    assert encoded["word_starts"].tolist() == [1, 4, 6, -1, -1, -1, -1, -1, -1, -1]
    b_loc, outside = label_to_id["B-LOC"], label_to_id["O"]
    assert encoded["labels"].tolist() == [-1, b_loc, -1, -1, outside, -1, b_loc, -1, -1, -1]
    gold = np.where(encoded["labels"] >= 0, encoded["labels"], label_to_id["B-PER"])
    decoded = ner.decode_tags(len(words), encoded["word_starts"], gold, labels)
    assert decoded == ["B-LOC", "O", "B-LOC", "O", "O", "O", "O"]


def test_more_words_than_positions_are_truncated():
    tokenizer = wordpiece()
    words, tags = ["a"] * 12, ["B-MISC"] * 12
    encoded = ner.encode_sentence(tokenizer, words, tags, {"O": 0, "B-MISC": 1}, 6)
    assert encoded["word_starts"].tolist() == [1, 2, 3, 4, -1, -1]
    decoded = ner.decode_tags(12, encoded["word_starts"], np.ones(6, np.int32), ["O", "B-MISC"])
    assert decoded == ["B-MISC"] * 4 + ["O"] * 8
    # Past index max_seq_length a word cannot be recorded, even with room left for its tokens.
    words = ["\x00"] * 7 + ["a"]
    encoded = ner.encode_sentence(tokenizer, words, ["O"] * 8, {"O": 0}, 6)
    assert (encoded["word_starts"] == -1).all()
    assert encoded["input_ids"].tolist()[:2] == [tokenizer.cls_id, tokenizer.sep_id]


def test_unknown_tag_and_mismatched_lengths_are_user_errors():
    tokenizer = wordpiece()
    with pytest.raises(UserError, match="tag 'B-FOO' is not among"):
        ner.encode_sentence(tokenizer, ["a"], ["B-FOO"], {"O": 0}, 8)
    with pytest.raises(UserError, match="1 words but 2 tags"):
        ner.encode_sentence(tokenizer, ["a"], ["O", "O"], {"O": 0}, 8)
