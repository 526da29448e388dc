"""Token ids with the character span of the text each token came from, for either tokenizer.

Span tasks (NER labels per word, SQuAD answers) need to know where every token stands in the
original text; WordPiece tracks it itself, SentencePiece reports UTF-8 byte offsets.
"""

from typing import NamedTuple

from bert_jax.data.sentencepiece import SentencePiece
from bert_jax.data.wordpiece import WordPiece


class TokenSpan(NamedTuple):
    """A token id and the span [start, end) of original characters it covers."""

    id: int
    start: int
    end: int


def token_spans(tokenizer: WordPiece | SentencePiece, text: str) -> list[TokenSpan]:
    """The tokens of `text` (no [CLS]/[SEP]) with their character spans, whitespace excluded."""
    if isinstance(tokenizer, WordPiece):
        ids = tokenizer.encode(text)
        tokens = tokenizer.tokenize_with_offsets(text)
        return [TokenSpan(i, t.start, t.end) for i, t in zip(ids, tokens, strict=True)]
    return _sentencepiece_spans(tokenizer, text)


def _sentencepiece_spans(tokenizer: SentencePiece, text: str) -> list[TokenSpan]:
    encoded = text.encode("utf-8")
    # Character index of every byte offset (and of the end), to turn byte spans into char spans.
    char_at = [0] * (len(encoded) + 1)
    position = 0
    for index, char in enumerate(text):
        width = len(char.encode("utf-8"))
        char_at[position : position + width] = [index] * width
        position += width
    char_at[len(encoded)] = len(text)
    spans = []
    for piece in tokenizer.encode_proto(text).pieces:
        start, end = char_at[piece.begin], char_at[piece.end]
        while start < end and text[start].isspace():  # "▁word" covers the space before it
            start += 1
        spans.append(TokenSpan(piece.id, start, end))
    return spans
