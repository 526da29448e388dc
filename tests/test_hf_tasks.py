"""Hugging Face task models both ways: BertForSequenceClassification (classification and
regression), BertForTokenClassification and BertForQuestionAnswering import with logits equal to
transformers', export from a fine-tuned workdir as the class transformers loads, in sharded
safetensors too; their tokenizer loads with AutoTokenizer; init_from keeps a matching head."""

import json
import os

import jax
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from bert_jax.checkpoints import Checkpoints, encode_meta
from bert_jax.convert import Pretrained, load_hf, load_workdir, save_hf
from bert_jax.convert.hf import SAFETENSORS_INDEX_FILE
from bert_jax.data.sentencepiece import SPECIAL_TOKENS
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError
from bert_jax.inference import Predictor
from bert_jax.tasks.registry import task_module
from bert_jax.tasks.starting_point import with_matching_head
from conftest import randomised, tiny_bert, tiny_hf_config

TOLERANCE = 1e-5
WORDS = ["the", "cafe", "café", "naive", "résumé", "straße", "big", "##ger", "##s", "中", "文"]
VOCAB = [*SPECIAL_TOKENS, *"abcdefghijklmnopqrstuvwxyz.,!?'-", *WORDS]
LABELS = ["B-PER", "I-PER", "O"]
TRICKY = [
    "Café naïve RÉSUMÉ, straße!",
    "  spaced \t out\nlines  ",
    "中文 bigger 😀 x\u200by \x00ctrl",
    "unknownword's-end ½",
]

# (transformers class, our task kind, config.json extras)
CLASSES = {
    "classification": (
        transformers.BertForSequenceClassification,
        {"id2label": dict(enumerate(LABELS)), "label2id": {k: i for i, k in enumerate(LABELS)}},
    ),
    "regression": (
        transformers.BertForSequenceClassification,
        {"num_labels": 1, "problem_type": "regression"},
    ),
    "ner": (
        transformers.BertForTokenClassification,
        {"id2label": dict(enumerate(LABELS)), "label2id": {k: i for i, k in enumerate(LABELS)}},
    ),
    "squad": (transformers.BertForQuestionAnswering, {}),
}


def hf_task_dir(directory, case: str, do_lower_case: bool = True) -> tuple[str, torch.nn.Module]:
    cls, extras = CLASSES[case]
    torch.manual_seed(0)
    config = transformers.BertConfig(**tiny_hf_config(vocab_size=len(VOCAB)), **extras)
    model = randomised(cls(config), seed=2)
    model.save_pretrained(directory)
    WordPiece(VOCAB, do_lower_case=do_lower_case).save_vocab(os.path.join(directory, "vocab.txt"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as file:
        json.dump({"do_lower_case": do_lower_case}, file)
    return str(directory), model


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.ones((5, 24), np.int32)
    mask[1, 9:], mask[3, 3:], mask[4, 17:] = 0, 0, 0
    return {
        "input_ids": rng.integers(0, len(VOCAB), mask.shape).astype(np.int32) * mask,
        "token_type_ids": (np.arange(24) >= rng.integers(2, 12, (5, 1))).astype(np.int32) * mask,
        "attention_mask": mask,
    }


def hf_logits(model: torch.nn.Module, arrays: dict) -> np.ndarray:
    with torch.no_grad():
        out = model(**{key: torch.tensor(value) for key, value in arrays.items()})
    if isinstance(model, transformers.BertForQuestionAnswering):
        return np.stack([out.start_logits.numpy(), out.end_logits.numpy()], -1)
    return out.logits.numpy()


def our_logits(pretrained: Pretrained, arrays: dict) -> np.ndarray:
    p = pretrained
    predictor = Predictor(p.task, p.config, p.params, p.tokenizer)
    return predictor.logits(arrays, batch_size=4, per_token=pretrained.kind != "classification")


def max_difference(ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray) -> float:
    """Over real tokens only for per-token logits (padding positions are not compared)."""
    if ours.ndim == 2:
        return float(np.abs(ours - theirs).max())
    rows = zip(ours, theirs, mask, strict=True)
    return float(max(np.abs(o[m > 0] - t[m > 0]).max() for o, t, m in rows))


@pytest.mark.parametrize("case", list(CLASSES))
def test_hf_task_models_import_with_their_logits_and_export_back(case, arrays, tmp_path):
    directory, model = hf_task_dir(tmp_path / "hf", case)

    imported = load_hf(directory)

    kind = "classification" if case == "regression" else case
    assert imported.kind == kind
    if case in ("classification", "ner"):
        assert imported.task["labels"] == LABELS
    if case == "regression":
        assert imported.task["labels"] is None
    difference = max_difference(
        our_logits(imported, arrays), hf_logits(model, arrays), arrays["attention_mask"]
    )
    print(f"{type(model).__name__} ({case}) max abs logit difference: {difference:.2e}")
    assert difference <= TOLERANCE
    save_hf(str(tmp_path / "out"), imported)
    reloaded = transformers.AutoConfig.from_pretrained(tmp_path / "out")
    assert reloaded.architectures == [type(model).__name__]
    again = type(model).from_pretrained(tmp_path / "out").eval()
    theirs, exported = model.state_dict(), again.state_dict()
    assert set(exported) == set(theirs)
    for name, tensor in theirs.items():  # the exact tensors come back
        assert torch.equal(exported[name], tensor), name
    if case == "regression":
        assert reloaded.problem_type == "regression" and reloaded.num_labels == 1
    if case == "classification":
        assert reloaded.id2label == dict(enumerate(LABELS))
        assert reloaded.problem_type == "single_label_classification"


def fine_tuned_workdir(workdir: str, info: dict, steps=(4, 9)) -> dict:
    """A workdir of a fine-tuning run of `info`'s task, as the loop writes it; its newest params."""
    bert = tiny_bert(vocab_size=len(VOCAB))
    tokenizer = WordPiece(VOCAB, do_lower_case=True)
    checkpoints = Checkpoints(workdir, max_to_keep=2, best_metric="eval/f1", best_mode="max")
    meta = encode_meta(json.dumps({"task": info["kind"]}), tokenizer, bert, info)
    for step in steps:
        model = task_module(info["kind"]).model(bert, info)(nnx.Rngs(step))
        params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
        state = {"micro_step": jax.numpy.int32(step), "params": params, "opt_state": {}}
        checkpoints.save(step, state, {"data": {}}, meta)
    checkpoints.wait()
    checkpoints.close()
    return jax.tree.map(np.asarray, params)


@pytest.mark.parametrize(
    "info, cls",
    [
        (
            {"kind": "classification", "labels": LABELS, "text_a": "sentence", "text_b": None,
             "max_seq_length": 32},
            transformers.BertForSequenceClassification,
        ),
        (
            {"kind": "ner", "labels": LABELS, "max_seq_length": 32},
            transformers.BertForTokenClassification,
        ),
    ],
)  # fmt: skip
def test_fine_tuned_workdir_exports_as_its_task_class_in_shards(info, cls, arrays, tmp_path):
    workdir = str(tmp_path / "run")
    fine_tuned_workdir(workdir, info)
    pretrained = load_workdir(workdir)
    assert pretrained.task == info

    save_hf(str(tmp_path / "hf"), pretrained, max_shard_bytes=40_000)

    files = os.listdir(tmp_path / "hf")
    shards = sorted(name for name in files if name.endswith(".safetensors"))
    assert len(shards) > 2 and SAFETENSORS_INDEX_FILE in files and "model.safetensors" not in files
    model = transformers.AutoConfig.from_pretrained(tmp_path / "hf")
    assert model.architectures == [cls.__name__] and model.id2label == dict(enumerate(LABELS))
    theirs = cls.from_pretrained(tmp_path / "hf").eval()
    difference = max_difference(
        our_logits(pretrained, arrays), hf_logits(theirs, arrays), arrays["attention_mask"]
    )
    assert difference <= TOLERANCE
    back = load_hf(str(tmp_path / "hf"))  # read from the shards
    assert back.task["labels"] == LABELS
    np.testing.assert_array_equal(
        back.params["classifier"]["kernel"], pretrained.params["classifier"]["kernel"]
    )


def test_a_shard_missing_from_the_index_is_named(tmp_path):
    directory, _ = hf_task_dir(tmp_path / "hf", "squad")
    save_hf(str(tmp_path / "out"), load_hf(directory), max_shard_bytes=40_000)
    second = sorted(name for name in os.listdir(tmp_path / "out") if name.startswith("model-"))[1]
    os.remove(tmp_path / "out" / second)

    with pytest.raises(UserError, match=f"lists {second}, which is missing"):
        load_hf(str(tmp_path / "out"))


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_exported_wordpiece_loads_with_autotokenizer_giving_our_ids(do_lower_case, tmp_path):
    directory, _ = hf_task_dir(tmp_path / "hf", "classification", do_lower_case)
    imported = load_hf(directory)
    save_hf(str(tmp_path / "out"), imported)

    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    for text in TRICKY:
        assert theirs(text)["input_ids"] == [2, *imported.tokenizer.encode(text), 3], text
    pair = theirs(TRICKY[0], TRICKY[1])
    ours = imported.tokenizer.encode_pair(TRICKY[0], TRICKY[1], max_length=512)
    assert pair["input_ids"] == ours["input_ids"]
    assert pair["token_type_ids"] == ours["token_type_ids"]


def test_init_from_keeps_the_head_only_for_the_same_task_and_labels(tmp_path):
    directory, _ = hf_task_dir(tmp_path / "hf", "classification")
    imported = load_hf(directory)
    kernel = imported.params["classifier"]["kernel"]
    info = {"kind": "classification", "labels": LABELS}

    assert with_matching_head(imported, info) is imported
    reordered = with_matching_head(imported, info | {"labels": LABELS[::-1]})
    np.testing.assert_array_equal(reordered.params["classifier"]["kernel"], kernel[:, ::-1])
    for other in (info | {"labels": ["a", "b", "c"]}, info | {"labels": None}, {"kind": "ner"}):
        assert "classifier" not in with_matching_head(imported, other).params
    assert "bert" in with_matching_head(imported, {"kind": "ner"}).params
