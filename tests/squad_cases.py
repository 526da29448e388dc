"""SQuAD test cases shared by the examples, features and decoding tests: passages with
tricky answers, both kinds of tokenizer trained on them, and the logits of a perfect model."""

import random
import re
import string
import unicodedata

import numpy as np
import pytest

from bert_jax.data import squad_features
from bert_jax.data.sentencepiece import SPECIAL_TOKENS, SentencePiece
from bert_jax.data.squad_examples import QAExample
from bert_jax.data.wordpiece import WordPiece

# (context, answers) with accents, punctuation, runs of spaces, and answers at the very start
# and the very end of the context. "€" is in neither vocabulary's letters ([UNK] in WordPiece).
PASSAGES = [
    (
        "Café Ñandú opened in 1998, near the old harbour; its keeper was Zoë Müller",
        ["Café Ñandú", "1998", "old harbour", "Zoë Müller"],
    ),
    (
        "The  river   Thames flows   through London (England), about 346 km long!",
        ["The", "river   Thames", "London (England)", "346 km", "long!"],
    ),
    (
        "It cost $4.5 million — roughly €4 million — in 2019, said the naïve façade's owner.",
        ["$4.5 million", "€4 million", "2019", "naïve façade's owner"],
    ),
]
QUESTIONS = ["What is it?", "Who opened the old café near London?", "When, and how much?"]
LONG_CONTEXT = (
    "The harbour opened in 1998 and the river flows through London. " * 6
    + "Its keeper was Zoë Müller, who said the café cost $4.5 million."
)


def qa(id_: str, question: str, context: str, *answers: str) -> QAExample:
    """An example whose answer starts are found in the context."""
    starts = tuple(context.index(answer) for answer in answers)
    return QAExample(id_, question, context, answers, starts)


def passage_examples() -> list[QAExample]:
    examples = []
    for p, (context, answers) in enumerate(PASSAGES):
        for a, answer in enumerate(answers):
            examples.append(qa(f"p{p}a{a}", QUESTIONS[(p + a) % 3], context, answer))
    return examples


def all_texts() -> list[str]:
    return [context for context, _ in PASSAGES] + QUESTIONS + [LONG_CONTEXT]


@pytest.fixture(scope="module")
def wordpiece() -> WordPiece:
    """Whole words for most of the text, a few words as ## pieces, and single letters, digits
    and punctuation so any other word is spelled out; no "€"."""
    folded = unicodedata.normalize("NFD", " ".join(all_texts()).lower())
    folded = "".join(c for c in folded if unicodedata.category(c) != "Mn")
    words = set(re.findall(r"[a-z0-9]{2,}", folded)) - {"harbour", "opened", "thames", "muller"}
    letters = string.ascii_lowercase + string.digits
    vocab = [
        *SPECIAL_TOKENS,
        *sorted(words),
        "harb",
        "##our",
        "open",
        "##ed",
        *letters,
        *("##" + c for c in letters),
        *string.punctuation,
        "—",
    ]
    return WordPiece(vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def sentencepiece() -> SentencePiece:
    """A ~300-piece BPE model trained on shuffled words of the test text.

    Punctuation stands apart from words in the training sentences, so no piece joins them (a
    piece "1998," could not give the answer "1998" back).
    """
    words = re.findall(r"\w+|[^\w\s]", " ".join(all_texts()))
    rng = random.Random(0)
    sentences = [" ".join(rng.sample(words, 10)) for _ in range(400)]
    return SentencePiece.train([sentences], vocab_size=300)


@pytest.fixture(params=["wordpiece", "sentencepiece"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


def peaked_logits(features: squad_features.QAFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a perfect model: 10 at each feature's target start and end, 0 elsewhere."""
    start = np.zeros(features.input_ids.shape, np.float32)
    end = np.zeros(features.input_ids.shape, np.float32)
    rows = np.arange(len(features))
    start[rows, features.start_positions] = 10.0
    end[rows, features.end_positions] = 10.0
    return start, end
