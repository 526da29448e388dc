"""Meshes on 8 simulated CPU devices: same losses as 1 device, real shards, portable checkpoints."""

import json
import subprocess
import sys

import pytest
from ml_collections import ConfigDict

from bert_jax.errors import UserError
from bert_jax.sharding import mesh_shape, spec_for
from conftest import REPO, read_scalars, run_main

EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
ONE_DEVICE = {"XLA_FLAGS": ""}
RUN = {
    "num_train_steps": 20,
    "batch_size": 16,
    "data.eval_batch_size": 16,
    "checkpoint_every_steps": 10,
    "eval_every_steps": 10,
    "optimizer.schedule": "constant",  # so a run split in two halves has the same rates
}
MESHES = {"data8": (8, 1, 1), "data2_fsdp4": (2, 4, 1), "data2_fsdp2_tensor2": (2, 2, 2)}


def mesh_flags(data: int, fsdp: int, tensor: int) -> dict:
    return {"mesh.data": data, "mesh.fsdp": fsdp, "mesh.tensor": tensor}


def mesh_config(data, fsdp, tensor) -> ConfigDict:
    return ConfigDict({"mesh": {"data": data, "fsdp": fsdp, "tensor": tensor}})


def test_mesh_shape_fills_minus_one_and_rejects_what_does_not_fit():
    assert mesh_shape(mesh_config(-1, 1, 1), 8) == (8, 1, 1)
    assert mesh_shape(mesh_config(2, -1, 2), 8) == (2, 2, 2)
    for bad in [(3, -1, 1), (2, 2, 1), (-1, -1, 1), (0, 8, 1)]:
        with pytest.raises(UserError, match="mesh.data"):
            mesh_shape(mesh_config(*bad), 8)


def test_spec_follows_rules_and_replicates_what_does_not_divide():
    class FakeMesh:
        shape = {"data": 2, "fsdp": 4, "tensor": 2}

    rules = {"embed": ("fsdp",), "mlp": ("tensor",), "vocab": ("tensor",)}
    assert tuple(spec_for(("embed", "mlp"), (8, 6), FakeMesh, rules)) == ("fsdp", "tensor")
    assert tuple(spec_for(("embed", "mlp"), (6, 6), FakeMesh, rules)) == (None, "tensor")
    # "vocab" and "mlp" both want "tensor": only the first dimension gets it.
    assert tuple(spec_for(("vocab", "mlp"), (8, 8), FakeMesh, rules)) == ("tensor", None)


@pytest.fixture(scope="module")
def single_device_losses(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("one"))
    result = run_main(workdir, env=ONE_DEVICE, **RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    return read_scalars(workdir)["train/loss"]


def assert_close_losses(expected: dict, got: dict, steps=None) -> None:
    steps = steps or sorted(expected)
    for step in steps:
        assert got[step] == pytest.approx(expected[step], rel=2e-4, abs=2e-4), step


@pytest.mark.slow
@pytest.mark.parametrize("mesh", sorted(MESHES))
def test_mesh_matches_single_device(mesh, single_device_losses, tmp_path):
    workdir = str(tmp_path / mesh)
    result = run_main(workdir, env=EIGHT_DEVICES, **RUN, **mesh_flags(*MESHES[mesh]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"mesh {{'data': {MESHES[mesh][0]}," in result.stderr
    assert_close_losses(single_device_losses, read_scalars(workdir)["train/loss"])


PROBE = """
import json, sys, jax
from configs.pretrain import get_config
from bert_jax.optim import build_optimizer
from bert_jax.sharding import make_mesh
from bert_jax.model.config import from_run_config
from bert_jax.tasks.pretraining import model
from bert_jax.train_state import state_spec
config = get_config()
config.model.hidden_size, config.model.num_heads, config.model.intermediate_size = 32, 2, 64
config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 2, 2, 2
tx, _ = build_optimizer(config)
bert = from_run_config(config, 300)
spec = state_spec(config, bert, model(bert, {"sentence_head": True}), tx, make_mesh(config))
state = spec.init()
flat = jax.tree_util.tree_flatten_with_path(state)[0]
print(json.dumps({
    jax.tree_util.keystr(path, simple=True, separator="/"): [
        list(x.shape), list(x.addressable_shards[0].data.shape), str(x.sharding.spec)]
    for path, x in flat
}))
"""


@pytest.mark.slow
def test_parameters_and_optimizer_moments_are_really_sharded():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=EIGHT_DEVICES | {"PYTHONPATH": REPO},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = json.loads(result.stdout.strip().splitlines()[-1])
    kernel = "params/bert/encoder/layers/mlp/intermediate/kernel"
    # [layers, embed, mlp] = [2, 32, 64] over (None, fsdp=2, tensor=2): each device holds 1/4.
    assert arrays[kernel] == [[2, 32, 64], [2, 16, 32], "P(None, 'fsdp', 'tensor')"]
    word = "params/bert/embeddings/word/embedding"
    assert arrays[word][1] == [150, 16]  # [vocab / tensor, embed / fsdp]
    moments = [k for k in arrays if k.startswith("opt_state/") and k.endswith(kernel[7:])]
    assert moments and all(arrays[k] == arrays[kernel] for k in moments), moments
    assert arrays["micro_step"][1] == []  # scalars stay replicated


@pytest.mark.slow
@pytest.mark.parametrize(
    "first, second", [(EIGHT_DEVICES, ONE_DEVICE), (ONE_DEVICE, EIGHT_DEVICES)]
)
def test_checkpoint_moves_between_meshes(first, second, single_device_losses, tmp_path):
    workdir = str(tmp_path / "moved")
    meshes = {id(EIGHT_DEVICES): mesh_flags(2, 2, 2), id(ONE_DEVICE): mesh_flags(-1, 1, 1)}
    half = run_main(workdir, env=first, **(RUN | {"num_train_steps": 10}), **meshes[id(first)])
    assert half.returncode == 0, half.stderr[-3000:]
    rest = run_main(workdir, env=second, **RUN, **meshes[id(second)])
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert "Resuming from the checkpoint at step 10" in rest.stderr
    assert_close_losses(single_device_losses, read_scalars(workdir)["train/loss"])


@pytest.mark.slow
def test_bfloat16_compute_trains_close_to_float32(tmp_path):
    losses = {}
    for dtype in ("float32", "bfloat16"):
        workdir = str(tmp_path / dtype)
        result = run_main(workdir, env=ONE_DEVICE, dtype=dtype, num_train_steps=60)
        assert result.returncode == 0, result.stderr[-3000:]
        losses[dtype] = read_scalars(workdir)["eval/mlm_loss"][60]
    assert losses["bfloat16"] == pytest.approx(losses["float32"], abs=0.05), losses
