"""The tokenizer of a preparation: a given SentencePiece `.model` or WordPiece `vocab.txt`, or a
SentencePiece model trained once on a seeded sample of the corpus, stored in the prepared DIR.

The sample reads whole windows of the corpus (1/256 of it each) in a seeded order until it has
`data.tokenizer_sample_sentences` sentences, so its cost follows the sample, not the corpus.
"""

import hashlib
import os

import numpy as np
from ml_collections import ConfigDict

from bert_jax.data.any_tokenizer import AnyTokenizer
from bert_jax.data.corpus import Document
from bert_jax.data.corpus_slices import CorpusLayout, slice_bounds, slice_documents
from bert_jax.data.sentencepiece import SentencePiece
from bert_jax.data.shard_files import write_bytes_atomically
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

SAMPLE_WINDOWS = 256
SENTENCEPIECE_FILE = "tokenizer.model"
WORDPIECE_FILE = "vocab.txt"


def tokenizer_settings(config: ConfigDict) -> dict:
    """What decides the tokenizer, as recorded in the manifest (a given file by its checksum)."""
    data = config.data
    if not data.tokenizer:
        return {
            "kind": "sentencepiece",
            "trained": True,
            "vocab_size": data.vocab_size,
            "sample_sentences": data.tokenizer_sample_sentences,
        }
    path = data.tokenizer
    if not os.path.isfile(path):
        raise UserError(
            f"data.tokenizer={path!r} does not exist; give a SentencePiece .model or a "
            "WordPiece vocab.txt, or unset it to train one."
        )
    with open(path, "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    if path.endswith(".txt"):
        lower = data.do_lower_case is not False
        return {"kind": "wordpiece", "trained": False, "sha256": digest, "do_lower_case": lower}
    return {"kind": "sentencepiece", "trained": False, "sha256": digest}


def build_tokenizer(config: ConfigDict, layout: CorpusLayout) -> AnyTokenizer:
    """Loads the configured tokenizer, or trains one on a sample of the corpus."""
    data = config.data
    if data.tokenizer and data.tokenizer.endswith(".txt"):
        return WordPiece.from_vocab_file(
            data.tokenizer, do_lower_case=data.do_lower_case is not False
        )
    if data.tokenizer:
        return SentencePiece.load(data.tokenizer)
    sample = corpus_sample(layout, data.tokenizer_sample_sentences, config.seed)
    if not sample:
        raise UserError(
            f"data.corpus={layout.spec!r} holds no usable sentences; point it at text with "
            "one sentence per line, or use 'default'."
        )
    return SentencePiece.train(
        sample, data.vocab_size, seed=config.seed, max_sentences=data.tokenizer_sample_sentences
    )


def corpus_sample(layout: CorpusLayout, sentences: int, seed: int) -> list[Document]:
    """Documents of seeded windows of the corpus, in corpus order, holding >= `sentences`
    sentences (or the whole corpus)."""
    windows = min(SAMPLE_WINDOWS, max(layout.size, 1))
    chosen: dict[int, list[Document]] = {}
    count = 0
    for window in np.random.default_rng(seed).permutation(windows):
        documents = slice_documents(layout, *slice_bounds(layout.size, int(window), windows))
        chosen[int(window)] = documents
        count += sum(map(len, documents))
        if count >= sentences:
            break
    return [doc for window in sorted(chosen) for doc in chosen[window]]


def save_tokenizer(tokenizer: AnyTokenizer, directory: str) -> str:
    """Writes the tokenizer into the prepared directory; returns its file name."""
    if isinstance(tokenizer, SentencePiece):
        write_bytes_atomically(os.path.join(directory, SENTENCEPIECE_FILE), tokenizer.to_bytes())
        return SENTENCEPIECE_FILE
    text = "".join(piece + "\n" for piece in tokenizer.vocab)
    write_bytes_atomically(os.path.join(directory, WORDPIECE_FILE), text.encode("utf-8"))
    return WORDPIECE_FILE


def load_saved_tokenizer(path: str, kind: str, do_lower_case: bool | None) -> AnyTokenizer:
    """The tokenizer file a preparation wrote."""
    if kind == "wordpiece":
        return WordPiece.from_vocab_file(path, do_lower_case=do_lower_case is not False)
    return SentencePiece.load(path)
