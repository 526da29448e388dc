"""BERT's WordPiece tokenizer over a `vocab.txt`, giving exactly the ids of Hugging Face's Python
`BertTokenizer` (`BertTokenizerLegacy` in transformers 5), with character offsets for span tasks.

Text is cleaned, CJK characters are isolated, words are NFC-normalised, optionally lowercased and
stripped of accents, split at punctuation, then cut greedily into the longest vocabulary pieces
(`##` marks a piece that continues a word). Every character keeps the span of the original text
it came from, so each token knows where it stands in the input.
"""

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import NamedTuple

from bert_jax.data.encoding import encode_pair
from bert_jax.data.sentencepiece import SPECIAL_TOKENS
from bert_jax.errors import UserError

PAD, UNK, CLS, SEP, MASK = SPECIAL_TOKENS
CONTINUATION = "##"
MAX_WORD_CHARS = 100
"""Longer words become [UNK] whole, as in BERT."""

_HIDDEN_IN_DECODE = frozenset({PAD, CLS, SEP, MASK})


class Token(NamedTuple):
    """A vocabulary piece and the span [start, end) of original text it was made from."""

    text: str
    start: int
    end: int


class _Char(NamedTuple):
    """One character of normalised text and the span of original text it came from."""

    char: str
    start: int
    end: int


def _is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return and Unicode space separators (BERT's definition)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    """Unicode control and format characters, except the whitespace tab, newline and return."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    """Unicode punctuation, plus every ASCII character that is neither letter, digit nor space."""
    code = ord(char)
    ascii_symbol = 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
    return ascii_symbol or unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    """A CJK ideograph (the Unicode blocks BERT isolates; not Hangul, Hiragana or Katakana)."""
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _nfc(text: str) -> str:
    """Canonical composition, so that "e" + U+0301 and "é" tokenize alike."""
    return unicodedata.normalize("NFC", text)


def _strip_accents(text: str) -> str:
    """Decomposes (NFD) and drops the non-spacing marks."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


def _clean(text: str, offset: int) -> list[_Char]:
    """Drops NUL, U+FFFD and control characters, maps whitespace to " ", isolates CJK ideographs."""
    chars = []
    for start, char in enumerate(text, offset):
        if char in "\x00\ufffd" or _is_control(char):
            continue
        char = " " if _is_whitespace(char) else char
        isolated = [" ", char, " "] if _is_cjk(char) else [char]
        chars += [_Char(piece, start, start + 1) for piece in isolated]
    return chars


def _text(chars: list[_Char]) -> str:
    """The characters as a string."""
    return "".join(char.char for char in chars)


def _words(chars: list[_Char]) -> list[list[_Char]]:
    """Runs of non-space characters (`str.split` semantics)."""
    words: list[list[_Char]] = [[]]
    for char in chars:
        if char.char.isspace():
            words.append([])
        else:
            words[-1].append(char)
    return [word for word in words if word]


def _clusters(word: list[_Char]) -> list[list[_Char]]:
    """The word cut before every character of combining class 0: bases with their marks."""
    clusters: list[list[_Char]] = []
    for char in word:
        if not clusters or not unicodedata.combining(char.char):
            clusters.append([])
        clusters[-1].append(char)
    return clusters


def _transform(word: list[_Char], function: Callable[[str], str]) -> list[_Char]:
    """`function` of the word's text, each output character keeping the span it came from.

    Each cluster's share of the output is as long as `function` of the cluster alone; when the
    shares do not add up (clusters composed together), all output takes the whole word's span.
    """
    result = function(_text(word))
    if result == _text(word):
        return word
    clusters = _clusters(word)
    lengths = [len(function(_text(cluster))) for cluster in clusters]
    if sum(lengths) != len(result):
        return [_Char(char, word[0].start, word[-1].end) for char in result]
    output, position = [], 0
    for cluster, length in zip(clusters, lengths, strict=True):
        span = cluster[0].start, cluster[-1].end
        output += [_Char(char, *span) for char in result[position : position + length]]
        position += length
    return output


def _split_punctuation(word: list[_Char]) -> list[list[_Char]]:
    """Every punctuation character becomes a word of its own."""
    parts: list[list[_Char]] = []
    joinable = False
    for char in word:
        if _is_punctuation(char.char):
            parts.append([char])
            joinable = False
        else:
            if not joinable:
                parts.append([])
            parts[-1].append(char)
            joinable = True
    return parts


class WordPiece:
    """Text <-> ids with a BERT `vocab.txt`, which must hold [PAD] [UNK] [CLS] [SEP] [MASK]."""

    def __init__(
        self,
        vocab: list[str],
        *,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        origin: str = "the vocabulary",
    ):
        """`strip_accents=None` strips them exactly when lowercasing, as BERT does."""
        # A piece listed twice keeps its last id, as in Hugging Face's load_vocab.
        self._ids = {piece: index for index, piece in enumerate(vocab)}
        absent = [token for token in SPECIAL_TOKENS if token not in self._ids]
        if absent:
            raise UserError(
                f"{origin} lacks the special tokens {', '.join(absent)}; use a BERT vocab.txt "
                "that lists all of " + ", ".join(SPECIAL_TOKENS) + "."
            )
        self._vocab = list(vocab)
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self._specials = re.compile("|".join(map(re.escape, SPECIAL_TOKENS)))
        self._pieces = functools.lru_cache(maxsize=1 << 16)(self._split_word)

    @classmethod
    def from_vocab_file(
        cls, path: str, do_lower_case: bool = True, strip_accents: bool | None = None
    ) -> "WordPiece":
        """Reads a `vocab.txt`: one piece per line, the line number being its id."""
        try:
            with open(path, encoding="utf-8") as file:
                vocab = [line.rstrip("\n") for line in file]
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(
                f"{path} cannot be read as a vocab.txt ({error}); give a UTF-8 file with one "
                "piece per line."
            ) from None
        return cls(vocab, do_lower_case=do_lower_case, strip_accents=strip_accents, origin=path)

    def save_vocab(self, path: str) -> None:
        """Writes the vocabulary as a `vocab.txt`."""
        with open(path, "w", encoding="utf-8") as file:
            file.writelines(piece + "\n" for piece in self._vocab)

    @property
    def vocab(self) -> list[str]:
        """The pieces in id order."""
        return list(self._vocab)

    @property
    def vocab_size(self) -> int:
        """Number of lines of the vocabulary: the size of the model's embedding table."""
        return len(self._vocab)

    @property
    def pad_id(self) -> int:
        """Id of [PAD]."""
        return self._ids[PAD]

    @property
    def unk_id(self) -> int:
        """Id of [UNK]."""
        return self._ids[UNK]

    @property
    def cls_id(self) -> int:
        """Id of [CLS]."""
        return self._ids[CLS]

    @property
    def sep_id(self) -> int:
        """Id of [SEP]."""
        return self._ids[SEP]

    @property
    def mask_id(self) -> int:
        """Id of [MASK]."""
        return self._ids[MASK]

    def word_start_mask(self):
        """Bool [vocab_size]: True for every piece but `##` continuations (whole-word masking)."""
        import numpy as np

        return np.array([not piece.startswith(CONTINUATION) for piece in self._vocab])

    def tokenize_with_offsets(self, text: str) -> list[Token]:
        """The pieces of `text`, each with the character span of `text` it was made from.

        Special tokens written in the text ("[MASK]") stay single tokens, as in Hugging Face.
        """
        tokens, position = [], 0
        for special in self._specials.finditer(text):
            tokens += self._tokenize_span(text[position : special.start()], position)
            tokens.append(Token(special.group(), special.start(), special.end()))
            position = special.end()
        return tokens + self._tokenize_span(text[position:], position)

    def encode(self, text: str) -> list[int]:
        """Piece ids of the text, without [CLS] and [SEP]."""
        return [self._ids[token.text] for token in self.tokenize_with_offsets(text)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Piece ids of each text (the same ids as `encode`)."""
        return [self.encode(text) for text in texts]

    def encode_pair(self, first: str, second: str | None = None, **options) -> dict[str, list[int]]:
        """[CLS] first [SEP] (second [SEP]), truncated as Hugging Face does: see `encode_pair`."""
        return encode_pair(self, first, second, **options)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids, "##" pieces joined to their word; [PAD] [CLS] [SEP] [MASK] dropped."""
        pieces = [self._vocab[int(i)] for i in ids]
        text = " ".join(piece for piece in pieces if piece not in _HIDDEN_IN_DECODE)
        return text.replace(" " + CONTINUATION, "").strip()

    def _tokenize_span(self, text: str, offset: int) -> list[Token]:
        """Tokens of text free of special tokens that starts at `offset` in the original text."""
        tokens = []
        for word in self._basic_words(text, offset):
            for piece, start, end in self._pieces(_text(word)):
                tokens.append(Token(piece, word[start].start, word[end - 1].end))
        return tokens

    def _basic_words(self, text: str, offset: int) -> list[list[_Char]]:
        """BERT's basic tokenization: clean, isolate CJK, normalise, lowercase, cut punctuation."""
        words = []
        for word in _words(_clean(text, offset)):
            word = _transform(word, _nfc)
            if _text(word) in SPECIAL_TOKENS:
                words.append(word)  # e.g. "[MA\x00SK]" once cleaned, kept whole as in BERT
                continue
            if self.do_lower_case:
                word = _transform(word, str.lower)
            if self.strip_accents or (self.do_lower_case and self.strip_accents is None):
                word = _transform(word, _strip_accents)
            words += _split_punctuation(word)
        return words

    def _split_word(self, word: str) -> tuple[tuple[str, int, int], ...]:
        """Greedy longest-match-first pieces of a word with their character ranges.

        A word longer than MAX_WORD_CHARS, or one with a part no piece matches, is [UNK] whole.
        """
        whole = ((UNK, 0, len(word)),)
        if len(word) > MAX_WORD_CHARS:
            return whole
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
                if piece in self._ids:
                    break
            else:
                return whole
            pieces.append((piece, start, end))
            start = end
        return tuple(pieces)
