"""Config -> tokenizer, streamed pretraining batches and fixed eval batches, always from a
prepared directory: `prepared:DIR`, or WORKDIR/prepared, made from any other corpus on the first
run (so a resume reads the manifest and never tokenizes again).
"""

import dataclasses
import hashlib
import os
import tempfile

import jax
from absl import logging
from ml_collections import ConfigDict

from bert_jax.data.any_tokenizer import AnyTokenizer
from bert_jax.data.manifest import MANIFEST_FILE, Manifest, check_settings, read_manifest
from bert_jax.data.pair_records import RowLayout, record_dtype
from bert_jax.data.prepare_runners import prepare_directory
from bert_jax.data.prepared_records import PreparedRecords
from bert_jax.data.sentence_pairs import max_predictions_per_seq
from bert_jax.data.streaming import StreamedBatches, eval_batches
from bert_jax.data.tokenizer_choice import load_saved_tokenizer, tokenizer_settings

TOKENIZER_FILE = "tokenizer.model"
PREPARED = "prepared:"
PREPARED_IN_WORKDIR = "prepared"
# What training itself depends on, checked against a prepared: directory's manifest.
_TRAINING_SETTINGS = ("max_seq_length", "sentence_task")


@dataclasses.dataclass
class PretrainingData:
    tokenizer: AnyTokenizer
    train: StreamedBatches
    eval_batches: list[dict]  # this process's rows of each eval batch
    max_predictions: int  # masked positions per sequence, shared with the MLM head
    data_fingerprint: str  # SHA-256 of the prepared directory's manifest


def masking_options(config: ConfigDict, tokenizer: AnyTokenizer) -> dict:
    data = config.data
    return dict(
        masked_lm_prob=data.masked_lm_prob,
        max_predictions=max_predictions_per_seq(data.max_seq_length, data.masked_lm_prob),
        mask_id=tokenizer.mask_id,
        vocab_size=tokenizer.vocab_size,
        special_ids=(tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id),
        word_start=tokenizer.word_start_mask() if data.whole_word_masking else None,
    )


def prepared_corpus(config: ConfigDict, workdir: str) -> Manifest:
    """The manifest of the prepared corpus this run trains on, preparing it if need be."""
    spec = config.data.corpus
    if spec.startswith(PREPARED):
        directory = spec.removeprefix(PREPARED)
        manifest = read_manifest(directory)
        path = os.path.join(directory, MANIFEST_FILE)
        wanted = {"max_seq_length": config.data.max_seq_length}
        wanted["sentence_task"] = config.sentence_task
        check_settings(path, manifest.settings, wanted, keys=_TRAINING_SETTINGS)
        if config.data.tokenizer:
            given = {"tokenizer": {"sha256": tokenizer_settings(config)["sha256"]}}
            recorded = manifest.settings["tokenizer"].get("sha256", manifest.tokenizer["sha256"])
            check_settings(path, {"tokenizer": {"sha256": recorded}}, given)
        return manifest
    return prepare_directory(
        config, local_prepared_directory(workdir), workers=config.data.prepare_workers
    )


def local_prepared_directory(workdir: str) -> str:
    """WORKDIR/prepared, or for a remote workdir (gs://) a local directory named after it:
    ArrayRecord shards are read from local disk."""
    if "://" not in workdir:
        return os.path.join(workdir, PREPARED_IN_WORKDIR)
    name = hashlib.sha256(workdir.encode()).hexdigest()[:16]
    directory = os.path.join(tempfile.gettempdir(), "bert_jax_prepared", name)
    logging.info("The workdir is remote: preparing the corpus into %s.", directory)
    return directory


def build_pretraining_data(config: ConfigDict, workdir: str) -> PretrainingData:
    """Everything the loop reads; batches are a function of (seed, epoch, batch), so resume is
    exact, and start-up reads only the manifest of an already prepared corpus."""
    data = config.data
    manifest = prepared_corpus(config, workdir)
    info = manifest.tokenizer
    tokenizer = load_saved_tokenizer(
        os.path.join(manifest.directory, info["file"]), info["kind"], info.get("do_lower_case")
    )
    layout = RowLayout(
        dtype=record_dtype(tokenizer.vocab_size).str,
        max_seq_length=manifest.settings["max_seq_length"],
        cls_id=info["cls_id"],
        sep_id=info["sep_id"],
        pad_id=info["pad_id"],
    )
    masking = masking_options(config, tokenizer)
    train_records = PreparedRecords(manifest.split_files("train"))
    eval_records = PreparedRecords(manifest.split_files("eval"))
    logging.info(
        "Data: %s, %d train / %d eval sentence pairs of up to %d tokens in %d shards.",
        manifest.directory,
        len(train_records),
        len(eval_records),
        data.max_seq_length,
        len(manifest.content["shards"]),
    )
    processes = dict(process_index=jax.process_index(), process_count=jax.process_count())
    train = StreamedBatches(
        train_records,
        layout,
        masking,
        global_batch_size=config.batch_size,
        seed=config.seed,
        num_workers=data.num_workers,
        prefetch=data.prefetch,
        **processes,
    )
    evals = eval_batches(
        eval_records,
        layout,
        masking,
        batch_size=data.eval_batch_size,
        seed=config.seed,
        num_batches=data.max_eval_batches,
        **processes,
    )
    return PretrainingData(
        tokenizer, train, evals, masking["max_predictions"], manifest.fingerprint
    )
