"""SQuAD v1.1 and v2.0 examples: a question, its context and its answers, read from the official
JSON files, JSON lines in the Hugging Face layout, or TFDS, with every answer checked against the
context it claims to quote."""

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from etils import epath

from bert_jax.data import sources
from bert_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class QAExample:
    """A question about a context; `answers` empty means it has no answer (SQuAD v2)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]  # character offset of each answer in `context`


def read_squad_json(path: str) -> list[QAExample]:
    """Examples of an official SQuAD v1.1 or v2.0 file (data -> paragraphs -> qas), local or
    remote (gs://...); a v2 question with `is_impossible` has no answers."""
    squad = _load_json(path)
    examples = []
    try:
        for article in squad["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    answers = [] if qa.get("is_impossible", False) else qa["answers"]
                    examples.append(
                        _example(
                            qa["id"],
                            qa["question"],
                            context,
                            [answer["text"] for answer in answers],
                            [answer["answer_start"] for answer in answers],
                            path,
                        )
                    )
    except (KeyError, TypeError) as error:
        raise UserError(
            f"{path} is not in the SQuAD JSON layout ({type(error).__name__}: {error}); give "
            "the official v1.1/v2.0 file: data -> paragraphs -> context and qas."
        ) from None
    return _unique(examples, path)


def read_jsonl(path: str) -> list[QAExample]:
    """Examples of a JSON-lines file in the Hugging Face `datasets` layout, local or remote.

    Each line is {"id", "question", "context", "answers": {"text": [...], "answer_start":
    [...]}}; empty answer lists mean no answer. Blank lines are skipped.
    """
    examples = []
    for number, record in sources.json_lines(path):
        where = f"{path}, line {number}"
        try:
            answers = record["answers"]
            examples.append(
                _example(
                    record["id"],
                    record["question"],
                    record["context"],
                    list(answers["text"]),
                    list(answers["answer_start"]),
                    where,
                )
            )
        except (KeyError, TypeError) as error:
            raise UserError(
                f"{where} is not a SQuAD JSON object ({type(error).__name__}: {error}); give "
                'id, question, context and answers {"text": [...], "answer_start": [...]}.'
            ) from None
    return _unique(examples, path)


def example_from_tfds(features: Mapping[str, Any], *, origin: str = "TFDS") -> QAExample:
    """One example of TFDS `squad` (v1.1 or v2.0) as `tfds.as_numpy` gives it: strings as
    bytes, `answers` as {"text": bytes array, "answer_start": int32 array}; v2's
    `plausible_answers` are ignored."""
    answers = features["answers"]
    texts = [_decode(text) for text in answers["text"]]
    starts = [int(start) for start in answers["answer_start"]]
    if bool(features.get("is_impossible", False)):
        texts, starts = [], []
    return _example(
        _decode(features["id"]),
        _decode(features["question"]),
        _decode(features["context"]),
        texts,
        starts,
        origin,
    )


def load_tfds(name: str, *, split: str, data_dir: str | None = None) -> list[QAExample]:
    """Examples of an already prepared TFDS dataset such as "squad/v2.0" (nothing is
    downloaded); splits of `squad` are "train" and "validation"."""
    import tensorflow_datasets as tfds

    dataset, _ = sources.load_tfds(name, split=split, data_dir=data_dir)
    origin = f"tfds:{name}[{split}]"
    examples = [example_from_tfds(item, origin=origin) for item in tfds.as_numpy(dataset)]
    return _unique(examples, origin)


def read_examples(
    source: str, *, split: str = "train", data_dir: str | None = None
) -> list[QAExample]:
    """Examples of "tfds:NAME" (`split` and `data_dir` apply to it only), a `.jsonl` file in the
    Hugging Face layout, or a `.json` file in the official SQuAD layout."""
    if source.startswith("tfds:"):
        examples = load_tfds(source.removeprefix("tfds:"), split=split, data_dir=data_dir)
    elif source.endswith(".jsonl"):
        examples = read_jsonl(source)
    elif source.endswith(".json"):
        examples = read_squad_json(source)
    else:
        raise UserError(
            f"question answering data {source!r} is not 'tfds:NAME', a .jsonl nor a .json "
            "file; name one of those."
        )
    if not examples:
        raise UserError(f"{source} holds no questions; point it at SQuAD data.")
    return examples


def _example(
    id_: Any,
    question: Any,
    context: Any,
    texts: Sequence[Any],
    starts: Sequence[Any],
    origin: str,
) -> QAExample:
    """A checked example: every answer text is found at its `answer_start` in the context."""
    example = QAExample(
        str(id_), str(question), str(context), tuple(map(str, texts)), tuple(map(int, starts))
    )
    if len(example.answers) != len(example.answer_starts):
        raise UserError(
            f"example {example.id!r} in {origin} has {len(example.answers)} answer texts but "
            f"{len(example.answer_starts)} answer_start values; give one start per text."
        )
    for text, start in zip(example.answers, example.answer_starts, strict=True):
        found = example.context[start : start + len(text)] if start >= 0 else None
        if not text or found != text:
            raise UserError(
                f"example {example.id!r} in {origin}: answer {text!r} is not at "
                f"answer_start={start} of its context (which reads {found!r} there); fix the "
                "answer text or its answer_start."
            )
    return example


def _unique(examples: list[QAExample], origin: str) -> list[QAExample]:
    """The examples, checked to have distinct ids (predictions are keyed by id)."""
    seen = set()
    for example in examples:
        if example.id in seen:
            raise UserError(
                f"example id {example.id!r} appears more than once in {origin}; give each "
                "question its own id."
            )
        seen.add(example.id)
    return examples


def _decode(value: Any) -> str:
    """Text of a TFDS string (bytes in NumPy form) or of anything else."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _load_json(path: str) -> Any:
    try:
        with epath.Path(path).open("rb") as file:
            return json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(
            f"{path} cannot be read as JSON ({error}); give a UTF-8 SQuAD JSON file."
        ) from None
