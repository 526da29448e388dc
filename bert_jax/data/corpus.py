"""Text sources for pretraining: the embedded default corpus, local text files and TFDS datasets.

Every source yields documents, each a list of sentences (non-empty, whitespace-collapsed), which
is what the sentence-pair (NSP/SOP) construction in `pretraining.py` needs.
"""

import ast
import glob
import importlib.util
import os
import re
import sys

from etils import epath

from bert_jax.data.sources import load_tfds
from bert_jax.errors import UserError

Document = list[str]

MIN_SENTENCE_WORDS = 4
"""Shorter fragments (headings, labels, stray list items) are dropped from free text."""

# Standard-library modules that open windows or browsers, print, touch the terminal, are huge
# test suites, vary with the installed setuptools, or are the topics already read.
_SKIPPED_MODULES = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "test",
        "readline",
        "rlcompleter",
        "distutils",
        "pydoc_data",
    }
)
_BLANK_LINES = re.compile(r"\n\s*\n")
_HEADING_RULE = re.compile(r"^\s*([*=\-~^#+])\1{2,}\s*$", re.MULTILINE)
_CLOSERS = "\"')\u201d\u2019"  # quotes and brackets that may follow a sentence's final mark
_PROSE_END = ".!?" + _CLOSERS
# Whitespace after a final mark (and closer), unless a lowercase word follows ("e.g. this").
_SENTENCE_BREAK = re.compile(rf"(?:(?<=[.!?])|(?<=[.!?][{_CLOSERS}]))\s+(?=[^a-z])")


def split_sentences(text: str) -> list[str]:
    """Splits free text into sentences, keeping only prose paragraphs (no headings or code)."""
    sentences = []
    for paragraph in _BLANK_LINES.split(text):
        if _is_prose(paragraph):
            joined = " ".join(paragraph.split())
            sentences += [s for s in _SENTENCE_BREAK.split(joined) if _is_sentence(s)]
    return sentences


def _is_prose(paragraph: str) -> bool:
    """True for a paragraph of running text: ends like a sentence, mostly letters, no markup."""
    text = paragraph.strip()
    if not text or _HEADING_RULE.search(text) or ">>>" in text or "::=" in text:
        return False
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return text[-1] in _PROSE_END and letters >= 0.8 * len(text)


def _is_sentence(sentence: str) -> bool:
    """True unless the piece is a short fragment."""
    return len(sentence.split()) >= MIN_SENTENCE_WORDS


def default_corpus() -> list[Document]:
    """English prose every Python install carries, so a first run needs no download or file.

    One document per `pydoc` help topic and one per standard-library module (its docstring and
    those of its public classes and functions, read from the source), in sorted order: the same
    for a given Python in every process.
    """
    from pydoc_data.topics import topics

    texts = [topics[name] for name in sorted(topics)]
    texts += [
        _module_docstrings(name)
        for name in sorted(sys.stdlib_module_names)
        if not name.startswith("_") and name not in _SKIPPED_MODULES
    ]
    return [doc for doc in map(split_sentences, texts) if doc]


def _module_docstrings(name: str) -> str:
    """The docstrings of a module and of the public classes and functions it defines, or ''.

    Read from the source without importing it: no module runs, and nothing another library
    patches at run time (torch replaces `inspect.getfile`) changes the text.
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return ""
    if spec is None or not (spec.origin or "").endswith(".py"):
        return ""  # built in or compiled: no source to read
    try:
        with open(spec.origin, encoding="utf-8") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError):
        return ""
    definitions = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = [tree] + [
        node
        for node in tree.body
        if isinstance(node, definitions) and not node.name.startswith("_")
    ]
    return "\n\n".join(doc for doc in map(ast.get_docstring, nodes) if doc)


def load_documents(
    spec: str, *, data_dir: str | None = None, split: str = "train", text_key: str = "text"
) -> list[Document]:
    """Reads the corpus named by `data.corpus`: 'default', 'tfds:NAME' or text files.

    Text files use the original BERT format: one sentence per line, a blank line between
    documents; `spec` may be a path, a glob or a comma-separated list of them, read in sorted
    order, and a file boundary also ends a document.
    """
    if spec == "default":
        documents = default_corpus()
    elif spec.startswith("tfds:"):
        documents = tfds_documents(spec.removeprefix("tfds:"), data_dir, split, text_key)
    else:
        documents = [doc for path in matching_files(spec) for doc in _read_bert_text(path)]
    if not documents:
        raise UserError(
            f"data.corpus={spec!r} holds no usable sentences; point it at text with "
            "one sentence per line, or use 'default'."
        )
    return documents


def matching_files(spec: str) -> list[str]:
    """The files a comma-separated list of paths or globs names, each pattern sorted."""
    files = []
    for pattern in filter(None, (p.strip() for p in spec.split(","))):
        matches = sorted(_glob(pattern))
        if not matches:
            raise UserError(
                f"data.corpus: no file matches {pattern!r}; set data.corpus to "
                "existing text files, a glob, 'default' or 'tfds:NAME'."
            )
        files += matches
    return files


def _glob(pattern: str) -> list[str]:
    """Files matching a local pattern (`**` allowed) or a remote one such as gs://bucket/*.txt."""
    if "://" in pattern:
        import tensorflow as tf  # remote file systems; imported only when needed

        return [p for p in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(p)]
    local = glob.glob(os.path.expanduser(pattern), recursive=True)
    return [p for p in local if os.path.isfile(p)]


def clean_line(line: bytes) -> str:
    """One line of a BERT-format file as a sentence: UTF-8 (bad bytes replaced), whitespace
    collapsed; '' for a blank line, which ends a document."""
    return " ".join(line.decode("utf-8", "replace").split())


def _read_bert_text(path: str) -> list[Document]:
    """Parses one file of sentences, one per line, with blank lines between documents."""
    documents: list[Document] = [[]]
    with epath.Path(path).open("rb") as lines:
        for line in lines:
            sentence = clean_line(line)
            if sentence:
                documents[-1].append(sentence)
            elif documents[-1]:
                documents.append([])
    return [doc for doc in documents if doc]


def tfds_document_count(name: str, data_dir: str | None, split: str, text_key: str) -> int:
    """How many examples (documents) the TFDS split holds, from its metadata."""
    _, info = _tfds_dataset(name, data_dir, split, text_key)
    return info.splits[split].num_examples


def tfds_documents(
    name: str,
    data_dir: str | None,
    split: str,
    text_key: str,
    start: int = 0,
    stop: int | None = None,
) -> list[Document]:
    """The documents of examples [start, stop) of an already prepared TFDS dataset (nothing is
    downloaded); examples without a usable sentence give none."""
    import tensorflow_datasets as tfds

    sliced = bool(start or stop is not None)
    if sliced and "[" not in split:  # TFDS reads just that slice of the split
        split, sliced = f"{split}[{start}:{'' if stop is None else stop}]", False
    dataset, _ = _tfds_dataset(name, data_dir, split, text_key)
    if sliced:
        dataset = dataset.skip(start)
        if stop is not None:
            dataset = dataset.take(stop - start)
    texts = (example[text_key].decode("utf-8") for example in tfds.as_numpy(dataset))
    return [doc for doc in map(split_sentences, texts) if doc]


def _tfds_dataset(name: str, data_dir: str | None, split: str, text_key: str):
    """(dataset, info) of a TFDS dataset that has the text feature."""
    dataset, info = load_tfds(name, split=split, data_dir=data_dir, setting="data.corpus")
    if text_key not in info.features:
        raise UserError(
            f"data.corpus='tfds:{name}' has no feature {text_key!r}; set "
            f"data.text_key to one of {sorted(info.features)}."
        )
    return dataset, info
