"""The SentencePiece tokenizer: deterministic training, fixed special ids, serialization, checks."""

import io

import numpy as np
import pytest
import sentencepiece as spm

from bert_jax.data.corpus import default_corpus
from bert_jax.data.sentencepiece import SPECIAL_TOKENS, SentencePiece
from bert_jax.errors import UserError

VOCAB_SIZE = 2000


@pytest.fixture(scope="module")
def documents():
    return default_corpus()


@pytest.fixture(scope="module")
def tokenizer(documents) -> SentencePiece:
    return SentencePiece.train(documents, VOCAB_SIZE)


def pieces(model: bytes) -> list[str]:
    processor = spm.SentencePieceProcessor(model_proto=model)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def test_training_is_deterministic(documents, tokenizer):
    assert SentencePiece.train(documents, VOCAB_SIZE).to_bytes() == tokenizer.to_bytes()


def test_specials_come_first_and_the_size_is_the_requested_one(tokenizer):
    assert tuple(pieces(tokenizer.to_bytes())[:5]) == SPECIAL_TOKENS
    ids = (
        tokenizer.pad_id,
        tokenizer.unk_id,
        tokenizer.cls_id,
        tokenizer.sep_id,
        tokenizer.mask_id,
    )
    assert ids == (0, 1, 2, 3, 4)
    assert tokenizer.vocab_size == VOCAB_SIZE


def test_bytes_and_file_round_trips_give_the_same_tokenizer(tokenizer, tmp_path):
    text = "Return the value of the named attribute of an object."
    for copy in (
        SentencePiece.from_bytes(tokenizer.to_bytes()),
        _saved_and_loaded(tokenizer, tmp_path / "tokenizer.model"),
    ):
        assert copy.to_bytes() == tokenizer.to_bytes()
        assert copy.encode(text) == tokenizer.encode(text)


def _saved_and_loaded(tokenizer: SentencePiece, path) -> SentencePiece:
    tokenizer.save(path)
    return SentencePiece.load(path)


def test_encode_decode_round_trip_and_specials_are_never_read_from_text(tokenizer):
    text = "Raise a [MASK] error when [CLS] the [SEP] list is empty."
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert not {0, 2, 3, 4} & set(ids)
    assert tokenizer.decode([tokenizer.cls_id, *ids, tokenizer.sep_id, tokenizer.pad_id]) == text


def test_word_start_mask_marks_specials_and_first_pieces_of_words(tokenizer):
    mask = tokenizer.word_start_mask()
    assert mask.shape == (tokenizer.vocab_size,) and mask.dtype == np.bool_
    assert mask[:5].all()
    ids = tokenizer.encode("unsubscriptable")
    assert len(ids) > 1 and mask[ids[0]] and not mask[ids[1:]].any()


def test_a_model_without_the_specials_is_a_user_error(documents, tmp_path):
    model = io.BytesIO()
    sentences = [s for doc in documents[:50] for s in doc]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=300,
        num_threads=1,
        minloglevel=2,
    )
    path = tmp_path / "plain.model"
    path.write_bytes(model.getvalue())
    with pytest.raises(UserError, match=r"data\.tokenizer: .*plain\.model.*\[PAD\]"):
        SentencePiece.load(path)


@pytest.mark.parametrize("content", [None, b"not a model"])
def test_a_missing_or_corrupt_file_is_a_user_error(tmp_path, content):
    path = tmp_path / "tokenizer.model"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=r"data\.tokenizer: .*tokenizer\.model"):
        SentencePiece.load(path)


def test_a_vocabulary_too_small_for_the_corpus_is_a_user_error(documents):
    with pytest.raises(UserError, match=r"data\.vocab_size=10"):
        SentencePiece.train(documents[:5], 10)
