"""The corpus as a line of positions, and the documents that start in any slice of it.

Text files count bytes (of all files in order, each ending a document); the default corpus and
TFDS datasets count documents. A slice is read without reading what comes before it: a shard or
a tokenizer sample of a 20 GB corpus reads only its own part. Every document starts in exactly
one slice of a partition, so slices assign documents to shards deterministically.
"""

import dataclasses
import functools

from etils import epath

from bert_jax.data import corpus
from bert_jax.data.corpus import Document

_BACKWARD_BLOCK = 4096


@dataclasses.dataclass(frozen=True)
class CorpusLayout:
    """Where a corpus's documents are: its text files and their sizes, or a document count."""

    spec: str
    size: int  # bytes of all files, or documents
    files: tuple[tuple[str, int], ...] = ()  # (path, bytes), in reading order
    data_dir: str | None = None
    split: str = "train"
    text_key: str = "text"

    @property
    def unit(self) -> str:
        return "documents" if self.spec == "default" or self.spec.startswith("tfds:") else "bytes"


def corpus_layout(
    spec: str, *, data_dir: str | None = None, split: str = "train", text_key: str = "text"
) -> CorpusLayout:
    """The layout of `data.corpus`; reads file sizes (or the document count), no text."""
    if spec == "default":
        return CorpusLayout(spec, len(_default_documents()))
    if spec.startswith("tfds:"):
        count = corpus.tfds_document_count(spec.removeprefix("tfds:"), data_dir, split, text_key)
        return CorpusLayout(spec, count, data_dir=data_dir, split=split, text_key=text_key)
    files = tuple((path, epath.Path(path).stat().length) for path in corpus.matching_files(spec))
    return CorpusLayout(spec, sum(size for _, size in files), files)


def slice_bounds(size: int, index: int, count: int) -> tuple[int, int]:
    """[start, stop) of part `index` of `count` equal parts of [0, size)."""
    return index * size // count, (index + 1) * size // count


def slice_documents(layout: CorpusLayout, start: int, stop: int) -> list[Document]:
    """The documents whose first position lies in [start, stop), in corpus order."""
    if layout.spec == "default":
        return [list(doc) for doc in _default_documents()[start:stop]]
    if layout.spec.startswith("tfds:"):
        name = layout.spec.removeprefix("tfds:")
        return corpus.tfds_documents(
            name, layout.data_dir, layout.split, layout.text_key, start, stop
        )
    documents, offset = [], 0
    for path, size in layout.files:
        low, high = max(start - offset, 0), min(stop - offset, size)
        if low < high:
            documents += _documents_starting_in(path, low, high)
        offset += size
    return documents


@functools.cache
def _default_documents() -> tuple[Document, ...]:
    """The default corpus, built once per process (it takes seconds)."""
    return tuple(corpus.default_corpus())


def _documents_starting_in(path: str, start: int, stop: int) -> list[Document]:
    """Documents of one BERT-format file whose first line starts at a byte in [start, stop).

    A document is a run of non-blank lines; the one that starts before `stop` is read to its end.
    """
    with epath.Path(path).open("rb") as file:
        previous_blank, position = True, 0
        if start > 0:
            file.seek(start - 1)
            rest = file.readline()  # the end of the line holding byte start-1
            previous_blank = _is_blank(_line_start(file, start - 1) + rest)
            position = start - 1 + len(rest)
            file.seek(position)
        documents: list[Document] = []
        reading = False
        for line in file:
            sentence = corpus.clean_line(line)
            if sentence:
                if previous_blank:  # a document starts here
                    if position >= stop:
                        break
                    documents.append([])
                    reading = True
                if reading:
                    documents[-1].append(sentence)
            elif position >= stop:
                break
            previous_blank = not sentence
            position += len(line)
    return documents


def _line_start(file, end: int) -> bytes:
    """The bytes from the start of the line holding byte `end` up to (not including) it."""
    prefix, low = b"", end
    while low > 0:
        low = max(0, low - _BACKWARD_BLOCK)
        file.seek(low)
        prefix = file.read(end - low)
        newline = prefix.rfind(b"\n")
        if newline >= 0:
            return prefix[newline + 1 :]
    return prefix


def _is_blank(line: bytes) -> bool:
    return not corpus.clean_line(line)
