"""Reading what users point data settings at: text files (local or gs://) and prepared TFDS
datasets, with one clear error for each way they can fail."""

import json
from collections.abc import Iterator
from typing import Any

from etils import epath

from bert_jax.errors import UserError


def numbered_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of a UTF-8 file, local or remote; unreadable files are errors."""
    try:
        with epath.Path(path).open("rb") as file:
            for number, line in enumerate(file, 1):
                try:
                    # "utf-8-sig" drops the byte-order mark some editors put first.
                    text = line.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise UserError(
                        f"{path}, line {number} is not UTF-8; save the file as UTF-8."
                    ) from None
                yield number, text
    except OSError as error:
        raise UserError(
            f"{path} cannot be read ({error.strerror or error}); check the path."
        ) from None


def json_lines(path: str) -> Iterator[tuple[int, Any]]:
    """(line number from 1, decoded value) of each non-blank line of a JSON-lines file."""
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(
                f"{path}, line {number} is not valid JSON ({error.msg}); write one JSON object "
                "per line."
            ) from None


def load_tfds(name: str, *, split: str, data_dir: str | None, setting: str | None = None):
    """(dataset, info) of an already prepared TFDS dataset: nothing is downloaded at run time.
    `setting` names the config key that asked for it, for the error message."""
    import tensorflow_datasets as tfds  # imports TensorFlow: only TFDS sources pay for it

    where = data_dir or "the default TFDS data_dir"
    named = f"{setting}='tfds:{name}'" if setting else f"'tfds:{name}'"
    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=False, with_info=True)
    except (ValueError, AssertionError) as error:  # not found, not prepared, unknown split
        reason = str(error).splitlines()[0]
        raise UserError(
            f"{named} could not be read from {where} ({reason}); prepare it there with "
            f"`tfds build {name}` or fix the name, split or data_dir."
        ) from None
