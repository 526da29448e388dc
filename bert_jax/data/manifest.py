"""The files of a prepared directory that describe it: `plan.json` (written first: the settings
and tokenizer), one `shard-K-of-N.json` per finished shard, and `manifest.json` (written last:
plan plus every shard's record counts, sizes and checksums), and the checks made on them.

Training reads only the manifest (and the shard files' sizes); its checksum is the data's
fingerprint.
"""

import dataclasses
import hashlib
import json
import os

from bert_jax.data.preparation import FORMAT_VERSION
from bert_jax.data.shard_files import write_bytes_atomically
from bert_jax.errors import UserError

PLAN_FILE = "plan.json"
MANIFEST_FILE = "manifest.json"

# Manifest setting -> the config key (or flag) that sets it, for error messages.
_CONFIG_KEYS = {
    "format_version": "the format version",
    "corpus": "data.corpus",
    "corpus_size": "the size of data.corpus",
    "tfds": "data.data_dir/split/text_key",
    "num_shards": "data.num_shards (--num_shards)",
    "seed": "seed",
    "sentence_task": "sentence_task",
    "tokenizer.kind": "data.tokenizer",
    "tokenizer.trained": "data.tokenizer",
    "tokenizer.sha256": "data.tokenizer",
    "tokenizer.vocab_size": "data.vocab_size",
    "tokenizer.sample_sentences": "data.tokenizer_sample_sentences",
    "tokenizer.do_lower_case": "data.do_lower_case",
}


def shard_files(shard: int, num_shards: int) -> dict[str, str]:
    """File names of one shard: its train and eval records and its done-record."""
    stem = f"{shard:05d}-of-{num_shards:05d}"
    return {
        "train": f"train-{stem}.array_record",
        "eval": f"eval-{stem}.array_record",
        "done": f"shard-{stem}.json",
    }


def to_json(value) -> bytes:
    """Canonical JSON: the same value always gives the same bytes (and checksum)."""
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode("utf-8")


def write_json(path: str, value) -> None:
    write_bytes_atomically(path, to_json(value))


def read_json(path: str):
    """A JSON file of a prepared directory, or None if absent; damaged ones are errors."""
    try:
        with open(path, "rb") as file:
            return json.loads(file.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UserError(
            f"{path} cannot be read ({error}); delete its directory and prepare it again."
        ) from None


def check_settings(path: str, recorded: dict, wanted: dict, keys=None) -> None:
    """Refuses, in one sentence, a directory prepared with other example settings."""
    old, new = _flat(recorded), _flat(wanted)
    for key in keys if keys is not None else sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            name = _CONFIG_KEYS.get(key, f"data.{key}")
            raise UserError(
                f"{path} was prepared with {key}={old.get(key)!r}, but this config gives "
                f"{new.get(key)!r} ({name}); use the settings it was prepared with or prepare "
                "into another directory."
            )


def _flat(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A finished prepared directory, as training sees it."""

    directory: str
    content: dict
    fingerprint: str  # SHA-256 of manifest.json

    @property
    def settings(self) -> dict:
        return self.content["settings"]

    @property
    def tokenizer(self) -> dict:
        return self.content["tokenizer"]

    def split_files(self, split: str) -> list[tuple[str, int]]:
        """(path, records) of every shard file of `split` ("train" or "eval"), in shard order."""
        return [
            (os.path.join(self.directory, shard[split]["file"]), shard[split]["records"])
            for shard in self.content["shards"]
        ]


def read_manifest(directory: str) -> Manifest:
    """The manifest of a prepared directory, after checking every shard file is there, whole."""
    path = os.path.join(directory, MANIFEST_FILE)
    if "://" in directory:
        raise UserError(
            f"data.corpus=prepared:{directory} is remote, and ArrayRecord shards are read from "
            "local disk only; copy the directory to a local disk and point prepared: there."
        )
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise UserError(
            f"{directory} holds no {MANIFEST_FILE} (not prepared, or its preparation did not "
            f"finish); run `python -m bert_jax.prepare --output={directory}` with its config."
        ) from None
    content = read_json(path)
    version = content.get("settings", {}).get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path} has format version {version}, not {FORMAT_VERSION}; prepare the corpus "
            "again with this version of bert_jax."
        )
    for shard in content["shards"]:
        for split in ("train", "eval"):
            shard_path = os.path.join(directory, shard[split]["file"])
            try:
                size = os.path.getsize(shard_path)
            except OSError:
                raise UserError(
                    f"{shard_path} is missing; rerun bert_jax.prepare with --output={directory} "
                    "to write it again."
                ) from None
            if size != shard[split]["bytes"]:
                raise UserError(
                    f"{shard_path} has {size} bytes, not the {shard[split]['bytes']} the manifest "
                    f"records (truncated or replaced); delete it and rerun bert_jax.prepare with "
                    f"--output={directory}."
                )
    return Manifest(directory, content, hashlib.sha256(data).hexdigest())
