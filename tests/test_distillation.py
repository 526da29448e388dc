"""Distillation: the loss against a hand computation, a frozen teacher outside the student's
state, and an SST-2 teacher distilled into a smaller student through `bert_jax.main`."""

import json
import os
import re

import jax
import numpy as np
import optax
import pytest
from flax import nnx, traverse_util
from test_finetune import SST2, finetune, read_tsv, write_vocab

from conftest import TINY_FINETUNE, tiny_bert

ALPHA, TEMPERATURE, HIDDEN, ATTENTION = 0.3, 2.0, 0.5, 0.25


def _settings(**overrides):
    from bert_jax.tasks.distillation_loss import Settings

    values = dict(
        alpha=ALPHA,
        temperature=TEMPERATURE,
        hidden_weight=HIDDEN,
        attention_weight=ATTENTION,
        hidden_pairs=((0, 0), (1, 2)),
        attention_pairs=((1, 2),),
    )
    return Settings(**(values | overrides))


def _models(kind: str, num_labels: int, seed: int = 0):
    """A 1-layer student and a 2-layer teacher of the same width and heads."""
    from bert_jax.model.task_models import (
        BertForSequenceClassification,
        BertForTokenClassification,
    )

    model_class = BertForTokenClassification if kind == "ner" else BertForSequenceClassification
    student = model_class(tiny_bert(num_layers=1), num_labels, rngs=nnx.Rngs(seed + 1))
    teacher = model_class(tiny_bert(num_layers=2), num_labels, rngs=nnx.Rngs(seed + 2))
    for offset, model in enumerate([student, teacher]):  # confident heads: KL far from 0
        kernel = model.classifier.kernel
        kernel[...] = jax.random.normal(jax.random.key(seed + offset), kernel.shape)
    return student, teacher


def _batch(kind: str, num_labels: int) -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 97, (4, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[0, 7:], mask[2, 9:] = 0, 0
    if kind == "ner":
        labels = rng.integers(0, num_labels, ids.shape).astype(np.int32)
        labels[:, ::3] = -1  # not a word's first token
        labels[mask == 0] = -1
    elif num_labels == 1:
        labels = rng.normal(size=4).astype(np.float32)
    else:
        labels = rng.integers(0, num_labels, 4).astype(np.int32)
    return {
        "input_ids": ids,
        "token_type_ids": np.zeros_like(ids),
        "attention_mask": mask,
        "labels": labels,
    }


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize(
    "kind, num_labels", [("classification", 3), ("classification", 1), ("ner", 4)]
)
def test_loss_is_alpha_ce_plus_t2_kl_plus_layer_mse(kind, num_labels):
    from bert_jax.tasks.distillation_loss import make_loss

    student, teacher = _models(kind, num_labels)
    batch = _batch(kind, num_labels)
    regression = num_labels == 1
    settings = _settings()
    graphdef, teacher_params = nnx.split(teacher, nnx.Param)
    distill_loss = make_loss(graphdef, kind, regression, settings)
    loss, sums = nnx.jit(distill_loss)(student, batch, None, teacher_params)

    inputs = [batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")]

    @nnx.jit
    def outputs(model, inputs):
        return model(*inputs, intermediates=True)

    s_logits, s_inner = jax.tree.map(np.asarray, outputs(student, inputs))
    t_logits, t_inner = jax.tree.map(np.asarray, outputs(teacher, inputs))
    labels = batch["labels"]
    if kind == "ner":
        weight = (labels >= 0).astype(np.float64)
    else:
        weight = np.ones(labels.shape)
    safe = np.maximum(labels, 0).astype(int)
    if regression:
        hard_each = (s_logits[..., 0] - labels) ** 2
        soft_each = (s_logits[..., 0] - t_logits[..., 0]) ** 2
    else:
        hard_each = -np.take_along_axis(_log_softmax(s_logits), safe[..., None], -1)[..., 0]
        p_t = np.exp(_log_softmax(t_logits / TEMPERATURE))
        kl = (p_t * (np.log(p_t) - _log_softmax(s_logits / TEMPERATURE))).sum(-1)
        soft_each = TEMPERATURE**2 * kl
    hard = (hard_each * weight).sum() / weight.sum()
    soft = (soft_each * weight).sum() / weight.sum()
    tokens = batch["attention_mask"].astype(np.float64)
    hidden = sum(
        ((s_inner["hidden"][m] - t_inner["hidden"][n]) ** 2 * tokens[..., None]).sum()
        / (tokens.sum() * 32)
        for m, n in [(0, 0), (1, 2)]
    )
    pairs = (tokens[:, :, None] * tokens[:, None, :])[:, None]  # real query and key
    scores_s, scores_t = s_inner["attention_scores"][0], t_inner["attention_scores"][1]
    attention = ((scores_s - scores_t) ** 2 * pairs).sum() / (pairs.sum() * 4)
    expected = ALPHA * hard + (1 - ALPHA) * soft + HIDDEN * hidden + ATTENTION * attention

    np.testing.assert_allclose(float(sums["hard_loss"]), hard, rtol=1e-5)
    np.testing.assert_allclose(float(sums["soft_loss"]), soft, rtol=1e-5)
    np.testing.assert_allclose(float(sums["hidden_loss"]), hidden, rtol=1e-5)
    np.testing.assert_allclose(float(sums["attention_loss"]), attention, rtol=1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert soft > 0 and attention > 0  # two different models: every term is at work


def test_without_layer_losses_no_intermediates_and_alpha_1_is_plain_fine_tuning():
    from bert_jax.tasks.distillation_loss import make_loss

    student, teacher = _models("classification", 2)
    batch = _batch("classification", 2)
    graphdef, teacher_params = nnx.split(teacher, nnx.Param)
    settings = _settings(hidden_weight=0.0, attention_weight=0.0, alpha=0.0)
    distill_loss = make_loss(graphdef, "classification", False, settings)
    loss, sums = nnx.jit(distill_loss)(student, batch, None, teacher_params)
    assert "hidden_loss" not in sums and "attention_loss" not in sums
    np.testing.assert_allclose(float(loss), float(sums["soft_loss"]), rtol=1e-6)

    from bert_jax.tasks.classification import make_loss as labels_only

    # alpha=1 and no layer losses: exactly fine-tuning on the labels (the teacher is not run).
    settings = _settings(hidden_weight=0.0, attention_weight=0.0, alpha=1.0)
    distill_loss = make_loss(graphdef, "classification", False, settings)
    loss, sums = nnx.jit(distill_loss)(student, batch, None, teacher_params)
    assert "soft_loss" not in sums
    assert float(loss) == float(nnx.jit(labels_only(False))(student, batch, None)[0])


def test_teacher_is_a_frozen_step_input_outside_the_state():
    """One jitted step runs both models; the state (what is optimised and checkpointed) holds the
    student alone, the teacher's arrays are unchanged, and the teacher does steer the update."""
    from bert_jax.tasks.distillation_loss import make_loss
    from bert_jax.train_step import make_train_step

    student, teacher = _models("classification", 2)
    batch = _batch("classification", 2)
    graphdef, params = nnx.split(student, nnx.Param)
    params = nnx.to_pure_dict(params)
    teacher_graphdef, teacher_params = nnx.split(teacher, nnx.Param)
    teacher_params = nnx.to_pure_dict(teacher_params)
    before = jax.tree.map(np.array, teacher_params)
    tx = optax.adam(1e-2)  # moments shaped like what it optimises
    loss = make_loss(teacher_graphdef, "classification", False, _settings(alpha=0.0))
    step = jax.jit(make_train_step(graphdef, tx, 0, loss))

    def two_steps(teacher_params):
        state = {"micro_step": np.int32(0), "params": params, "opt_state": tx.init(params)}
        for _ in range(2):
            state, _ = step(state, batch, teacher_params)
        return state

    state = two_steps(teacher_params)
    assert jax.tree.structure(state["params"]) == jax.tree.structure(params)
    opt_leaves = len(jax.tree.leaves(state["opt_state"]))
    assert opt_leaves == 2 * len(jax.tree.leaves(params)) + 1  # Adam's moments and count only
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.array, teacher_params))
    # alpha=0: the student learns from the teacher alone, so another teacher moves it elsewhere.
    other = nnx.to_pure_dict(nnx.state(_models("classification", 2, seed=5)[1], nnx.Param))
    moved = two_steps(other)["params"]["classifier"]["kernel"]
    assert not np.allclose(state["params"]["classifier"]["kernel"], moved)


# End to end on SST-2: a tiny teacher fine-tuned briefly, distilled into a 1-layer student.

TRAIN_ROWS, DEV_ROWS = 512, 128
RUN = TINY_FINETUNE | {
    "batch_size": 16,
    "num_train_steps": 8,
    "log_every_steps": 4,
    "eval_every_steps": 8,
    "checkpoint_every_steps": 8,
    "learning_rate": 1e-3,
}


@pytest.fixture(scope="module")
def sst2_teacher(tmp_path_factory):
    """(train.tsv, dev.tsv, teacher workdir): 2 layers, hidden 32, fine-tuned for 8 steps."""
    root = tmp_path_factory.mktemp("distill")
    rows = read_tsv(os.path.join(SST2, "train.tsv"))
    words = [w for sentence, _ in rows[:TRAIN_ROWS] for w in sentence.split()]
    vocab = write_vocab(root / "vocab.txt", words)
    paths = []
    for name, chosen in [("train", rows[:TRAIN_ROWS]), ("dev", rows[-DEV_ROWS:])]:
        path = root / f"{name}.tsv"
        path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in chosen))
        paths.append(str(path))
    teacher = str(root / "teacher")
    data = {"data.train": paths[0], "data.validation": paths[1]}
    result = finetune("finetune_glue", teacher, **RUN, **data, **{"data.tokenizer": vocab})
    assert result.returncode == 0, result.stderr[-3000:]
    return paths[0], paths[1], teacher


@pytest.mark.slow
def test_distilled_student_checkpoint_holds_the_student_alone(sst2_teacher, tmp_path):
    from bert_jax.checkpoint_reads import model_config_of, newest_step_dir, read_checkpoint
    from bert_jax.inference import Predictor
    from bert_jax.model.task_models import BertForSequenceClassification

    train, dev, teacher = sst2_teacher
    student = str(tmp_path / "student")
    result = finetune(
        "distill_glue",
        student,
        **RUN,
        **{"data.train": train, "data.validation": dev, "teacher": teacher},
        **{"model.num_layers": 1, "distill.attention_weight": 0.1, "distill.hidden_weight": 0.1},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Distilling from the teacher" in result.stderr

    meta, params = read_checkpoint(newest_step_dir(student))
    bert = model_config_of(meta, params)
    assert bert.num_layers == 1 and json.loads(meta["task"])["kind"] == "classification"
    abstract = nnx.eval_shape(lambda: BertForSequenceClassification(bert, 2, rngs=nnx.Rngs(0)))
    expected = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))

    def shapes(tree):
        return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}

    assert shapes(params) == shapes(expected)  # no teacher parameter, no extra layer
    _, teacher_params = read_checkpoint(newest_step_dir(teacher, "best"))
    layers = "bert/encoder/layers/attention/query/kernel"
    assert shapes(teacher_params)[layers][0] == 2 and shapes(params)[layers][0] == 1

    from bert_jax.events import read_scalars

    scalars = read_scalars(student)
    for tag in ("train/soft_loss", "train/hard_loss", "train/hidden_loss", "train/attention_loss"):
        assert np.isfinite(list(scalars[tag].values())).all(), tag
    records = Predictor.from_workdir(student).predict_lines(["a gorgeous , witty film", "dull"])
    assert {r["label"] for r in records} <= {"0", "1"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"teacher": "/nonexistent"}, "teacher='/nonexistent' is not a directory"),
        ({"task": "ner"}, "was trained for a classification task, the student for ner"),
        ({"data.labels": ("1", "0")}, "predicts the labels ['0', '1']"),  # order matters
        ({"model.hidden_size": 16, "distill.hidden_weight": 1.0}, "distill.hidden_weight needs"),
        ({"distill.layer_map": ((1, 5),)}, "distill.layer_map has (1, 5)"),
        ({"data.tokenizer": "VOCAB"}, "uses another tokenizer than the student"),
    ],
)
def test_bad_distillation_settings_are_one_sentence(sst2_teacher, tmp_path, overrides, message):
    from bert_jax.errors import UserError
    from bert_jax.tasks.registry import build_task
    from configs import distill_glue

    train, dev, teacher = sst2_teacher
    config = distill_glue.get_config()
    settings = RUN | {"data.train": train, "data.validation": dev, "teacher": teacher} | overrides
    if settings.get("data.tokenizer") == "VOCAB":
        settings["data.tokenizer"] = write_vocab(tmp_path / "other.txt", ["movie", "film"])
    for key, value in settings.items():
        section, _, leaf = key.rpartition(".")
        (config[section] if section else config)[leaf] = value
    with pytest.raises(UserError, match=re.escape(message)):
        build_task(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


SHARDING_SCRIPT = """
import json, sys
import numpy as np, optax
from flax import nnx, traverse_util
sys.path.insert(0, "tests")
from conftest import tiny_bert
from bert_jax import sharding
from bert_jax.model.task_models import BertForSequenceClassification
from bert_jax.tasks.teacher import Teacher, place_params
from bert_jax.train_state import state_spec
from configs import distill_glue

config = distill_glue.get_config()
config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 2, 2
mesh = sharding.make_mesh(config)
bert = tiny_bert(num_layers=2)
build = lambda rngs: BertForSequenceClassification(bert, 2, rngs=rngs)
shapes = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: build(nnx.Rngs(0))), nnx.Param))
params = {"/".join(k): np.full(v.shape, i, v.dtype)
          for i, (k, v) in enumerate(traverse_util.flatten_dict(shapes).items())}
teacher = Teacher({}, bert, None, traverse_util.unflatten_dict(params, sep="/"), "test")
_, placed = place_params(teacher, build, mesh, config)
student = state_spec(config, bert, build, optax.adam(1e-3), mesh).shardings["params"]
flat_placed = traverse_util.flatten_dict(placed, sep="/")
flat_student = traverse_util.flatten_dict(student, sep="/")
print(json.dumps({
    "same": all(flat_placed[k].sharding.spec == flat_student[k].spec for k in flat_student),
    "sharded": sum(len(v.sharding.device_set) > 1 and not v.sharding.is_fully_replicated
                   for v in flat_placed.values()),
    "values": all(np.array_equal(np.asarray(flat_placed[k]), params[k]) for k in params),
}))
"""


def test_teacher_is_sharded_by_the_students_rules():
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run(
        [sys.executable, "-c", SHARDING_SCRIPT],
        cwd=REPO,
        env=os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"same": True, "sharded": report["sharded"], "values": True}
    assert report["sharded"] > 10  # fsdp and tensor axes really split the teacher's matrices
