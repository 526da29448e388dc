"""WordPiece: the ids of Hugging Face's Python BertTokenizer, the offsets of its Rust one, and
its pair encoding with truncation, on SST-2 sentences and on text made to be awkward."""

import collections
import csv
import itertools
import os

import pytest
import transformers

from bert_jax.data.sentencepiece import SPECIAL_TOKENS
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError
from conftest import REPO


def sst2_sentences(split: str) -> list[str]:
    """Sentences of shared/data/sst2, found beside the repository or one of its parents."""
    for parent in (REPO, *map(str, __import__("pathlib").Path(REPO).parents)):
        path = os.path.join(parent, "shared", "data", "sst2", f"{split}.tsv")
        if os.path.exists(path):
            with open(path, encoding="utf-8", newline="") as file:
                return [row["sentence"] for row in csv.DictReader(file, delimiter="\t")]
    raise FileNotFoundError(f"shared/data/sst2/{split}.tsv is not beside {REPO}")


DEV = sst2_sentences("dev")
TRICKY = [
    "Café Ñandú ÅNGSTRÖM naïve façade",
    "Cafe\u0301 decomposed accents",
    "中文字 and 日本語の文字 mixed中文text",
    "...!!?? ,,(--) $100 ^_^ `q` ~ «quoted» — dash",
    "emoji 😀👍🏽 here",
    "tab\there\nnew\rline\u2028para\u3000ideographic",
    "ctrl\x00\x07\u200b\ufffd z",
    "a" * 101 + " " + "b" * 100,
    "",
    "   \t\n ",
    "hello[MASK]world [CLS] x [mask]",
    "a NUL inside [MA\x00SK] is cleaned away",
    "ΟΔΟΣ οδός İstanbul ǅ",
    "Don't STOP believin' — it's 4:30pm!",
]


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory) -> str:
    """A vocab.txt from SST-2's training sentences: frequent words in both cases, frequent word
    endings as ## pieces, letters, CJK characters, accented words and punctuation."""
    words = collections.Counter(w for s in sst2_sentences("train") for w in s.split())
    frequent = [word for word, _ in words.most_common(1500)]
    endings = collections.Counter(w[i:] for w in words for i in range(1, min(len(w), 5)))
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = [
        *SPECIAL_TOKENS,
        *frequent,
        *(word.capitalize() for word in frequent[:200]),
        *("##" + ending for ending, _ in endings.most_common(400)),
        *letters,
        *("##" + letter for letter in letters),
        *"中文字日本!?.,;:'\"()-$`",
        *("café", "naïve", "Café", "ñ", "##ñ", "å", "Å", "ο", "##δ", "##ο", "##ς", "##σ"),
    ]
    directory = tmp_path_factory.mktemp("vocab")
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return str(directory)


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def tokenizers(request, vocab_dir):
    """(ours, Hugging Face's Python BertTokenizer, Hugging Face's Rust BertTokenizer)."""
    lower = request.param
    vocab_file = os.path.join(vocab_dir, "vocab.txt")
    ours = WordPiece.from_vocab_file(vocab_file, do_lower_case=lower)
    python = transformers.BertTokenizerLegacy(vocab_file, do_lower_case=lower)
    rust = transformers.BertTokenizer.from_pretrained(vocab_dir, do_lower_case=lower)
    return ours, python, rust


def test_ids_equal_hugging_face_on_every_sst2_dev_sentence(tokenizers):
    ours, python, _ = tokenizers
    texts = DEV + [sentence.title() for sentence in DEV]
    pieces = collections.Counter()
    for text in texts:
        expected = python.encode(text, add_special_tokens=False)
        assert ours.encode(text) == expected, text
        pieces.update(python.convert_ids_to_tokens(expected))
    # Not a trivial vocabulary: words are cut into pieces, and some are unknown.
    assert pieces["[UNK]"] > 10
    assert sum(n for piece, n in pieces.items() if piece.startswith("##")) > 1000


@pytest.mark.parametrize("text", TRICKY)
def test_ids_equal_hugging_face_on_awkward_text(tokenizers, text):
    ours, python, _ = tokenizers
    assert ours.encode(text) == python.encode(text, add_special_tokens=False)


def test_awkward_cases_do_what_bert_does(vocab_dir):
    vocab_file = os.path.join(vocab_dir, "vocab.txt")
    uncased = WordPiece.from_vocab_file(vocab_file)
    cased = WordPiece.from_vocab_file(vocab_file, do_lower_case=False)

    def pieces(tokenizer: WordPiece, text: str) -> list[str]:
        return [token.text for token in tokenizer.tokenize_with_offsets(text)]

    assert pieces(uncased, "Café") == pieces(uncased, "cafe") == ["ca", "##f", "##e"]
    assert pieces(cased, "Café") == ["Café"]
    assert pieces(cased, "café") == ["café"]
    assert pieces(uncased, "中文x") == ["中", "文", "x"]
    assert pieces(uncased, "a" * 101) == ["[UNK]"]
    assert pieces(uncased, "x[MASK]y") == ["x", "[MASK]", "y"]
    assert pieces(uncased, "") == pieces(uncased, " \t\n\u3000") == []


def offsets(tokenizer, text: str) -> list[tuple[str, int, int]]:
    """(piece, start, end) from Hugging Face's Rust tokenizer."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    return [(piece, *span) for piece, span in zip(pieces, encoded["offset_mapping"], strict=True)]


# The Rust tokenizer's ids differ here: it skips NFC, lowercases a final Σ to σ (Python: ς), and
# does not keep a special token that appears only once control characters are cleaned away.
RUST_DIFFERS = {
    "Cafe\u0301 decomposed accents",
    "ΟΔΟΣ οδός İstanbul ǅ",
    "a NUL inside [MA\x00SK] is cleaned away",
}


def test_offsets_equal_hugging_face_fast_tokenizer(tokenizers):
    ours, _, rust = tokenizers
    assert RUST_DIFFERS < set(TRICKY)
    texts = [t for t in TRICKY if t not in RUST_DIFFERS] + [s.title() for s in DEV[:300]]
    for text in texts:
        assert list(map(tuple, ours.tokenize_with_offsets(text))) == offsets(rust, text), text


def test_offsets_of_composed_and_final_sigma_words_cover_the_word(vocab_dir):
    uncased = WordPiece.from_vocab_file(os.path.join(vocab_dir, "vocab.txt"))
    # NFC joins e + U+0301 into é, which covers both; then accents are stripped.
    assert uncased.tokenize_with_offsets("x Cafe\u0301!") == [
        ("x", 0, 1),
        ("ca", 2, 4),
        ("##f", 4, 5),
        ("##e", 5, 7),
        ("!", 7, 8),
    ]
    assert uncased.tokenize_with_offsets(" ΟΔΟΣ") == [
        ("ο", 1, 2),
        ("##δ", 2, 3),
        ("##ο", 3, 4),
        ("##ς", 4, 5),
    ]


PAIRS = list(zip(DEV[:40:2], DEV[1:40:2], strict=True))


@pytest.mark.parametrize("truncation", ["longest_first", "only_first", "only_second"])
@pytest.mark.parametrize("max_length", [6, 13, 24, 64])
def test_pair_encoding_equals_hugging_face(tokenizers, truncation, max_length):
    ours, python, _ = tokenizers
    for (first, second), pad in itertools.product(PAIRS + [(DEV[0], None)], (False, True)):
        a, b = ours.encode(first), None if second is None else ours.encode(second)
        excess = len(a) + len(b or []) + (2 if b is None else 3) - max_length
        cuttable = {"longest_first": a + (b or []), "only_first": a, "only_second": b or []}
        if excess > len(cuttable[truncation]):
            with pytest.raises(UserError, match=f"max_length={max_length} is too short"):
                ours.encode_pair(first, second, max_length=max_length, truncation=truncation)
            continue
        expected = python(
            first,
            second,
            truncation=truncation,
            max_length=max_length,
            padding="max_length" if pad else False,
            return_token_type_ids=True,
        )
        encoded = ours.encode_pair(
            first, second, max_length=max_length, truncation=truncation, pad=pad
        )
        assert encoded == dict(expected), (first, second)


def test_special_ids_vocab_size_and_decode(tokenizers):
    ours, python, _ = tokenizers
    assert (ours.pad_id, ours.unk_id, ours.cls_id, ours.sep_id, ours.mask_id) == tuple(
        python.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    )
    assert ours.vocab_size == python.vocab_size
    ids = ours.encode_pair("A re-make, ok?", "zzz\u00e9 [MASK] 中", max_length=32)["input_ids"]
    shown = [t for t in python.convert_ids_to_tokens(ids) if t not in ("[CLS]", "[SEP]", "[MASK]")]
    assert ours.decode(ids) == python.convert_tokens_to_string(shown)


def test_a_vocabulary_without_the_special_tokens_is_refused(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\nhello\n")
    with pytest.raises(UserError, match=r"lacks the special tokens \[SEP\], \[MASK\]"):
        WordPiece.from_vocab_file(str(path))
