"""Checkpoints read on any topology, everywhere: a workdir written on 8 devices (data 2 x fsdp 4)
is predicted from, exported and fine-tuned from on 1 device, and one written on 1 device is
read the same ways on 8. These readers take the params alone, never the optimizer state."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, final_params, run_main

pytestmark = pytest.mark.slow
SST2_DEV = os.path.join(os.path.dirname(REPO), "shared", "data", "sst2", "dev.tsv")
EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
MESH = {"mesh.data": 2, "mesh.fsdp": 4}
SENTENCES = ["a gorgeous , witty , seductive movie .", "the plot is a mess ."]

READ_ON_EIGHT = """
import json, sys
import jax
from bert_jax.convert.hf import save_hf
from bert_jax.convert.load import load_workdir
from bert_jax.inference import Predictor
assert jax.device_count() == 8, jax.devices()
records = Predictor.from_workdir(sys.argv[1], "latest").predict_lines(json.loads(sys.argv[3]))
save_hf(sys.argv[4], load_workdir(sys.argv[2]))
print(json.dumps(records))
"""


def finetune(workdir: str, init_from: str, tsv: str, env: dict | None = None, **overrides):
    flags = {
        "init_from": init_from,
        "data.train": tsv,
        "data.validation": tsv,
        "data.max_seq_length": 32,
        "batch_size": 16,
        "num_train_steps": 4,
        "warmup_steps": 1,
        "data.eval_batch_size": 16,
    } | overrides
    command = [sys.executable, "-m", "bert_jax.main", "--config=configs/finetune_glue.py"]
    command += [f"--workdir={workdir}"] + [f"--config.{k}={v}" for k, v in flags.items()]
    result = subprocess.run(
        command, cwd=REPO, env=os.environ | (env or {}), capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    """pre8: pretrained on 8 devices; tune1: fine-tuned from it on 1 device; tune8: fine-tuned
    from tune1 on 8 devices; pre1: a pretraining workdir written on 1 device."""
    root = tmp_path_factory.mktemp("topology")
    tsv = root / "sst2.tsv"
    with open(SST2_DEV) as file:
        tsv.write_text("".join(file.readlines()[:65]))  # the header and 64 sentences
    paths = {name: str(root / name) for name in ("pre8", "tune1", "tune8", "pre1")}
    result = run_main(paths["pre8"], env=EIGHT, num_train_steps=4, **MESH)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mesh {'data': 2, 'fsdp': 4, 'tensor': 1}" in result.stderr
    result = finetune(paths["tune1"], paths["pre8"], str(tsv))
    assert f"parameter tensors from {paths['pre8']}; newly initialised: classifier" in (
        result.stderr
    )
    result = finetune(paths["tune8"], paths["tune1"], str(tsv), env=EIGHT, **MESH)
    assert "mesh {'data': 2, 'fsdp': 4, 'tensor': 1}" in result.stderr
    assert f"parameter tensors from {paths['tune1']}; newly initialised: none" in result.stderr
    write_pretraining_workdir(paths["pre1"])
    return paths


def write_pretraining_workdir(workdir: str) -> None:
    """A pretraining checkpoint saved by this (1-device) process, as the trainer saves one."""
    from flax import nnx

    from bert_jax.checkpoints import Checkpoints, encode_meta
    from bert_jax.data.corpus import default_corpus
    from bert_jax.data.sentencepiece import SentencePiece
    from bert_jax.model.config import from_run_config
    from bert_jax.model.pretraining_heads import BertForPreTraining
    from configs import pretrain
    from conftest import shrink_run_model

    run_config = pretrain.get_config()
    shrink_run_model(run_config.model)
    tokenizer = SentencePiece.train(default_corpus()[:30], 200)
    config = from_run_config(run_config, tokenizer.vocab_size)
    model = BertForPreTraining(config, sentence_head=True, rngs=nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    checkpoints = Checkpoints(workdir, max_to_keep=1, best_metric="eval/mlm_loss", best_mode="min")
    state = {"micro_step": jax.numpy.int32(1), "params": params, "opt_state": {"mu": params}}
    checkpoints.save(
        1, state, {"data": {}}, encode_meta(run_config.to_json(), tokenizer, config, {})
    )
    checkpoints.wait()
    checkpoints.close()


def hf_word_embeddings(directory: str) -> np.ndarray:
    import transformers

    model = transformers.BertForPreTraining.from_pretrained(directory)
    return model.bert.embeddings.word_embeddings.weight.detach().numpy()


def test_eight_device_workdirs_read_on_one_device(runs, tmp_path):
    from bert_jax.convert.hf import save_hf
    from bert_jax.convert.load import load_workdir
    from bert_jax.inference import Predictor

    assert jax.device_count() == 1
    records = Predictor.from_workdir(runs["tune8"], "latest").predict_lines(SENTENCES)
    assert [r["label"] in ("0", "1") for r in records] == [True, True]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in records)
    save_hf(str(tmp_path / "hf"), load_workdir(runs["pre8"]))
    expected = final_params(runs["pre8"])["['bert']['embeddings']['word']['embedding']"]
    np.testing.assert_array_equal(hf_word_embeddings(str(tmp_path / "hf")), expected)


def test_one_device_workdirs_read_on_eight_devices(runs, tmp_path):
    from bert_jax.inference import Predictor

    result = subprocess.run(
        [sys.executable, "-c", READ_ON_EIGHT, runs["tune1"], runs["pre1"], json.dumps(SENTENCES),
         str(tmp_path / "hf")],
        cwd=REPO, env=os.environ | EIGHT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    on_eight = json.loads(result.stdout.strip().splitlines()[-1])
    on_one = Predictor.from_workdir(runs["tune1"], "latest").predict_lines(SENTENCES)
    assert [r["label"] for r in on_eight] == [r["label"] for r in on_one]
    for eight, one in zip(on_eight, on_one, strict=True):
        assert eight["probability"] == pytest.approx(one["probability"], abs=1e-6)
    expected = final_params(runs["pre1"])["['bert']['embeddings']['word']['embedding']"]
    np.testing.assert_array_equal(hf_word_embeddings(str(tmp_path / "hf")), expected)
