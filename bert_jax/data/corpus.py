"""Text sources for pretraining: the embedded default corpus, local text files and TFDS datasets.

Every source yields documents, each a list of sentences (non-empty, whitespace-collapsed), which
is what the sentence-pair (NSP/SOP) construction in `pretraining.py` needs.
"""

import glob
import importlib
import inspect
import re
import sys
import warnings

from bert_jax.errors import UserError

Document = list[str]

MIN_SENTENCE_WORDS = 4
"""Shorter fragments (headings, labels, stray list items) are dropped from free text."""

# Standard-library modules that open windows or browsers, print, touch the terminal, are huge
# test suites, vary with the installed setuptools, or are the topics already read.
_SKIPPED_MODULES = frozenset({
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "readline",
    "rlcompleter", "distutils", "pydoc_data",
})
_BLANK_LINES = re.compile(r"\n\s*\n")
_HEADING_RULE = re.compile(r"^\s*([*=\-~^#+])\1{2,}\s*$", re.MULTILINE)
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)]))\s+(?=[^a-z])")
_PROSE_END = ".!?\"'”’)"


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
    those of its public classes and functions), in sorted order: deterministic for a Python build.
    """
    from pydoc_data.topics import topics

    texts = [topics[name] for name in sorted(topics)]
    texts += [_module_docstrings(name) for name in sorted(sys.stdlib_module_names)
              if not name.startswith("_") and name not in _SKIPPED_MODULES]
    return [doc for doc in map(split_sentences, texts) if doc]


def _module_docstrings(name: str) -> str:
    """The docstrings of a module and of the public classes and functions it defines, or ''."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated modules warn when imported or inspected
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - modules of other platforms or missing optional libraries
            return ""
        members = [vars(module)[key] for key in sorted(vars(module)) if not key.startswith("_")]
        docs = [module.__doc__] + [
            member.__doc__ for member in members
            if (inspect.isclass(member) or inspect.isroutine(member))
            and getattr(member, "__module__", None) == name
        ]
    return "\n\n".join(doc for doc in docs if isinstance(doc, str))
