"""A SentencePiece tokenizer with BERT's special tokens at fixed ids, trained in memory or loaded.

The specials come first, so every part of the code can rely on `[PAD]` being 0 and on ids at or
above `len(SPECIAL_TOKENS)` being ordinary pieces.
"""

import io
import os
from collections.abc import Iterable
from typing import NoReturn

import numpy as np
import sentencepiece as spm
from etils import epath

from bert_jax.data.corpus import Document
from bert_jax.errors import UserError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))

MAX_TRAINING_SENTENCES = 2_000_000
"""Larger corpora train the tokenizer on a seeded sample of this many sentences."""

_WORD_START = "▁"  # SentencePiece marks a piece that begins a word with this character


class SentencePiece:
    """Text <-> ids with a SentencePiece model whose first ids are `SPECIAL_TOKENS`."""

    def __init__(self, model: bytes, *, origin: str = "the tokenizer bytes"):
        """Wraps a serialized SentencePiece model, checking it has the specials at ids 0..4."""
        try:
            self._processor = spm.SentencePieceProcessor(model_proto=model)
        except RuntimeError:
            _reject(origin, "it is not a SentencePiece model")
        pieces = tuple(map(self._processor.id_to_piece, range(len(SPECIAL_TOKENS))))
        if self._processor.get_piece_size() <= len(SPECIAL_TOKENS) or pieces != SPECIAL_TOKENS:
            _reject(origin, f"its first pieces are {pieces}, not {SPECIAL_TOKENS} and more")
        self._model = model

    @classmethod
    def train(
        cls,
        documents: list[Document],
        vocab_size: int,
        seed: int = 0,
        max_sentences: int = MAX_TRAINING_SENTENCES,
    ) -> "SentencePiece":
        """Trains a BPE model on the documents' sentences: single-threaded, so deterministic.

        BPE reaches the requested size exactly (a small corpus may give fewer pieces, since
        `hard_vocab_limit` is off) and trains in well under a second on the default corpus.
        `seed` picks the sample of sentences when there are more than `max_sentences`.
        """
        sentences = [sentence for doc in documents for sentence in doc]
        if len(sentences) > max_sentences:
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(len(sentences), max_sentences, replace=False))
            sentences = [sentences[i] for i in keep]
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                model_type="bpe",
                vocab_size=vocab_size,
                hard_vocab_limit=False,
                pad_id=PAD_ID,
                pad_piece=SPECIAL_TOKENS[PAD_ID],
                unk_id=UNK_ID,
                unk_piece=SPECIAL_TOKENS[UNK_ID],
                bos_id=-1,
                eos_id=-1,
                # Control symbols, unlike user-defined ones, are never produced from text, so a
                # literal "[MASK]" in the corpus stays ordinary text.
                control_symbols=list(SPECIAL_TOKENS[CLS_ID:]),
                num_threads=1,
                shuffle_input_sentence=False,
                minloglevel=2,
            )
        except RuntimeError as error:
            raise UserError(
                f"data.vocab_size={vocab_size} could not be trained on this corpus "
                f"({str(error).split('] ')[-1]}); raise data.vocab_size or give "
                "more text."
            ) from None
        return cls(model.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> "SentencePiece":
        """The tokenizer serialized by `to_bytes` (e.g. stored in a checkpoint)."""
        return cls(data)

    def to_bytes(self) -> bytes:
        """The serialized SentencePiece model proto."""
        return self._model

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SentencePiece":
        """Reads a SentencePiece `.model` file (the format `save` writes)."""
        try:
            data = epath.Path(path).read_bytes()  # local or remote (gs://...)
        except OSError as error:
            _reject(str(path), error.strerror or "unreadable")
        return cls(data, origin=str(path))

    def save(self, path: str | os.PathLike) -> None:
        """Writes the model as a SentencePiece `.model` file."""
        epath.Path(path).write_bytes(self._model)

    @property
    def vocab_size(self) -> int:
        """Number of pieces, specials included: the size of the model's embedding table."""
        return self._processor.get_piece_size()

    @property
    def pad_id(self) -> int:
        """Id of [PAD], always 0."""
        return PAD_ID

    @property
    def unk_id(self) -> int:
        """Id of [UNK]."""
        return UNK_ID

    @property
    def cls_id(self) -> int:
        """Id of [CLS]."""
        return CLS_ID

    @property
    def sep_id(self) -> int:
        """Id of [SEP]."""
        return SEP_ID

    @property
    def mask_id(self) -> int:
        """Id of [MASK]."""
        return MASK_ID

    def encode(self, text: str) -> list[int]:
        """Piece ids of the text (never a special id other than [UNK])."""
        return self._processor.encode(text, out_type=int)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Piece ids of each text in one call into SentencePiece's C++ (one thread: a preparation
        worker is one process per core)."""
        return self._processor.encode(texts, out_type=int, num_threads=1)

    def encode_proto(self, text: str):
        """SentencePiece's full result: pieces with ids and UTF-8 byte spans of `text`."""
        return self._processor.encode(text, return_type="proto")

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; specials other than [UNK] decode to nothing."""
        return self._processor.decode([int(i) for i in ids])

    def word_start_mask(self) -> np.ndarray:
        """Bool [vocab_size]: True for specials and for pieces that begin a word (for whole-word
        masking)."""
        pieces = map(self._processor.id_to_piece, range(self.vocab_size))
        return np.array(
            [
                i < len(SPECIAL_TOKENS) or piece.startswith(_WORD_START)
                for i, piece in enumerate(pieces)
            ]
        )


def _reject(origin: str, reason: str) -> NoReturn:
    """Raises the error for a model that bert_jax cannot use."""
    raise UserError(
        f"data.tokenizer: {origin} cannot be used ({reason}); point data.tokenizer "
        "at a model saved by bert_jax, or unset it to train a new one."
    )
