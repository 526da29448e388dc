"""This project's tokenizers as Hugging Face `tokenizer.json`: AutoTokenizer (and the
`tokenizers` library alone) give exactly our ids, on tricky text and a whole corpus."""

import pytest
import tokenizers
import transformers

from bert_jax.convert.tokenizer_files import write_tokenizer
from bert_jax.convert.tokenizer_json import build_tokenizer
from bert_jax.data.corpus import default_corpus
from bert_jax.data.sentencepiece import SPECIAL_TOKENS, SentencePiece
from bert_jax.data.wordpiece import WordPiece

TRICKY = [
    "Café naïve RÉSUMÉ, straße Ǆ!",  # accents, composed and not; a titlecase digraph
    "  leading   and  trailing  ",  # runs of spaces
    "tab\there\nnewline\r\nend",
    "ＦＵＬＬ width ｶﾀｶﾅ ﬁ ½ ²",  # NFKC folds these
    "emoji 😀 snow ☃ 中文字符 測試",  # pieces the vocabulary lacks: [UNK]
    "x\u200by zero width, \x00ctrl\x07 \ufffd",
    "▁already marked ▁▁",
    "Ω≈ç√∫˜µ≤≥÷ — “quotes” …",
    "a",
]


@pytest.fixture(scope="module")
def corpus() -> list[list[str]]:
    return default_corpus()[:120]


@pytest.fixture(scope="module")
def sentencepiece(corpus) -> SentencePiece:
    return SentencePiece.train(corpus, 1500)


def test_sentencepiece_loads_with_autotokenizer_giving_our_ids(sentencepiece, corpus, tmp_path):
    write_tokenizer(str(tmp_path), sentencepiece, hf=True, max_length=128)

    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)

    assert (theirs.cls_token_id, theirs.sep_token_id, theirs.mask_token_id) == (2, 3, 4)
    assert theirs.pad_token_id == 0 and theirs.model_max_length == 128
    texts = TRICKY + [sentence for document in corpus for sentence in document]
    for text in texts:
        assert theirs(text)["input_ids"] == [2, *sentencepiece.encode(text), 3], text
    pair = theirs(TRICKY[0], TRICKY[1])
    a, b = sentencepiece.encode(TRICKY[0]), sentencepiece.encode(TRICKY[1])
    assert pair["input_ids"] == [2, *a, 3, *b, 3]
    assert pair["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert theirs.decode(sentencepiece.encode(TRICKY[6])) == sentencepiece.decode(
        sentencepiece.encode(TRICKY[6])
    )


@pytest.mark.parametrize("lower, strip", [(True, None), (False, None), (True, False)])
def test_wordpiece_tokenizer_json_gives_our_ids(corpus, lower, strip):
    words = sorted({w.lower() if lower else w for doc in corpus for s in doc for w in s.split()})
    vocab = [*SPECIAL_TOKENS, *"abcdefghijklmnopqrstuvwxyzé.,", *words[:2000], "##s", "##é"]
    ours = WordPiece(vocab, do_lower_case=lower, strip_accents=strip)

    theirs = tokenizers.Tokenizer.from_str(build_tokenizer(ours).to_str())

    for text in TRICKY + [s for doc in corpus[:40] for s in doc]:
        assert theirs.encode(text, add_special_tokens=False).ids == ours.encode(text), text
