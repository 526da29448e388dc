"""Weight conversion: parity with Hugging Face (PyTorch) outputs, Google TF checkpoints, round
trips, training workdirs, the command line, and clear failures on inconsistent checkpoints."""

import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
import transformers
from flax import nnx

from bert_jax.checkpoints import Checkpoints, encode_meta
from bert_jax.convert import (
    load_hf,
    load_pretrained,
    load_tf,
    load_workdir,
    save_hf,
    save_pretrained,
)
from bert_jax.convert.config_json import from_source_json
from bert_jax.convert.pretrained import Pretrained
from bert_jax.data.corpus import default_corpus
from bert_jax.data.sentencepiece import SPECIAL_TOKENS, SentencePiece
from bert_jax.errors import UserError
from bert_jax.model import BertForPreTraining, BertModel
from bert_jax.model.config import from_run_config
from configs import pretrain as pretrain_config
from conftest import REPO, randomised, shrink_run_model, tiny_hf_config

HF_CONFIG = tiny_hf_config(
    vocab_size=120, hidden_size=48, intermediate_size=96, max_position_embeddings=64
)
VOCAB = [*SPECIAL_TOKENS, *(f"w{i}" for i in range(100)), "Big", "big", "##ger"]
TOLERANCE = 1e-5  # float32 parity; measured differences are printed (pytest -s)


def write_tokenizer_files(directory: str) -> None:
    with open(os.path.join(directory, "vocab.txt"), "w") as file:
        file.write("\n".join(VOCAB) + "\n")
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as file:
        json.dump({"do_lower_case": False}, file)


@pytest.fixture(scope="module")
def hf_model() -> transformers.BertForPreTraining:
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(transformers.BertConfig(**HF_CONFIG))
    return randomised(model, seed=1)


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory) -> str:
    directory = str(tmp_path_factory.mktemp("hf"))
    hf_model.save_pretrained(directory)
    write_tokenizer_files(directory)
    return directory


@pytest.fixture(scope="module")
def imported(hf_dir) -> Pretrained:
    return load_hf(hf_dir)


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (3, 16)
    attention_mask = np.ones(shape, np.int32)
    attention_mask[1, 11:] = 0
    attention_mask[2, 4:] = 0
    return {
        "input_ids": rng.integers(0, HF_CONFIG["vocab_size"], shape, dtype=np.int32),
        "token_type_ids": (np.arange(16) >= rng.integers(2, 14, (3, 1))).astype(np.int32),
        "attention_mask": attention_mask,
        "masked_lm_positions": rng.integers(0, 16, (3, 5), dtype=np.int32),
    }


def hf_outputs(model: torch.nn.Module, batch: dict) -> dict[str, np.ndarray]:
    """Sequence and pooled outputs, and (for BertForPreTraining) MLM logits at the masked
    positions and NSP logits."""
    inputs = {k: torch.tensor(batch[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    encoder = model.bert if isinstance(model, transformers.BertForPreTraining) else model
    with torch.no_grad():
        base = encoder(**inputs)
        outputs = {"sequence": base.last_hidden_state.numpy(), "pooled": base.pooler_output.numpy()}
        if encoder is not model:
            heads = model(**inputs)
            positions = batch["masked_lm_positions"][..., None]
            logits = heads.prediction_logits.numpy()
            outputs["mlm"] = np.take_along_axis(logits, positions, axis=1)
            outputs["nsp"] = heads.seq_relationship_logits.numpy()
    return outputs


def our_outputs(pretrained: Pretrained, batch: dict) -> dict[str, np.ndarray]:
    """The same outputs from this project's model holding the imported parameters."""
    config, params = pretrained.config, pretrained.params
    inputs = [batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")]
    encoder = nnx.merge(nnx.graphdef(BertModel(config, rngs=nnx.Rngs(0))), params["bert"])
    sequence, pooled = encoder(*inputs)
    outputs = {"sequence": sequence, "pooled": pooled}
    if "mlm" in params:
        model = BertForPreTraining(config, sentence_head=True, rngs=nnx.Rngs(0))
        heads = nnx.merge(nnx.graphdef(model), params)(*inputs, batch["masked_lm_positions"])
        outputs |= {"mlm": heads["mlm_logits"], "nsp": heads["sentence_logits"]}
    return {key: np.asarray(value) for key, value in outputs.items()}


def max_differences(ours: dict, theirs: dict) -> dict[str, float]:
    assert set(ours) == set(theirs)
    return {key: float(np.abs(ours[key] - theirs[key]).max()) for key in theirs}


def assert_same_params(a: dict, b: dict) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_hf_import_matches_transformers(hf_model, imported, batch):
    assert imported.config.num_layers == 2 and imported.config.num_heads == 4
    assert imported.absent == ()
    differences = max_differences(our_outputs(imported, batch), hf_outputs(hf_model, batch))
    print("HF BertForPreTraining parity, max abs differences:", differences)
    assert max(differences.values()) <= TOLERANCE, differences
    assert not imported.tokenizer.do_lower_case  # from tokenizer_config.json


def test_headless_bert_model_imports_the_encoder_and_reports_the_heads(
    hf_model, imported, batch, tmp_path
):
    headless = transformers.BertModel(hf_model.config)
    headless.load_state_dict(hf_model.bert.state_dict())
    headless.eval().save_pretrained(tmp_path)
    write_tokenizer_files(tmp_path)

    pretrained = load_hf(str(tmp_path))

    assert pretrained.absent == ("mlm", "sentence")
    assert set(pretrained.params) == {"bert"}
    assert_same_params(pretrained.params["bert"], imported.params["bert"])
    differences = max_differences(our_outputs(pretrained, batch), hf_outputs(headless, batch))
    print("HF BertModel parity, max abs differences:", differences)
    assert max(differences.values()) <= TOLERANCE, differences


def test_export_to_hf_round_trips_exactly(hf_model, imported, batch, tmp_path):
    save_hf(str(tmp_path / "out"), imported)

    reloaded = transformers.BertForPreTraining.from_pretrained(tmp_path / "out").eval()
    theirs, ours = hf_outputs(reloaded, batch), hf_outputs(hf_model, batch)
    assert max_differences(theirs, ours) == dict.fromkeys(ours, 0.0)
    assert_same_params(load_hf(str(tmp_path / "out")).params, imported.params)
    tokenizer = transformers.BertTokenizer.from_pretrained(tmp_path / "out")
    text = "Big big bigger w7 W7"
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == imported.tokenizer.encode(text)


def hf_dir_with(directory, hf_dir: str, tensors: dict[str, np.ndarray]) -> str:
    """A copy of `hf_dir` whose weights are `tensors`."""
    shutil.copytree(hf_dir, directory, ignore=shutil.ignore_patterns("model.safetensors"))
    safetensors.numpy.save_file(tensors, os.path.join(directory, "model.safetensors"))
    return str(directory)


def test_pytorch_bin_with_legacy_names_equals_safetensors(hf_model, hf_dir, imported, tmp_path):
    state = hf_model.state_dict()  # holds the tied decoder copies, which must be accepted
    assert "cls.predictions.decoder.weight" in state
    legacy = {re.sub(r"LayerNorm\.weight$", "LayerNorm.gamma", k): v for k, v in state.items()}
    legacy = {re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", k): v for k, v in legacy.items()}
    shutil.copytree(hf_dir, tmp_path / "bin", ignore=shutil.ignore_patterns("model.safetensors"))
    torch.save(legacy, tmp_path / "bin" / "pytorch_model.bin")

    assert_same_params(load_hf(str(tmp_path / "bin")).params, imported.params)


def test_pytorch_bin_without_torch_asks_for_the_hf_extra(hf_model, hf_dir, tmp_path, monkeypatch):
    shutil.copytree(hf_dir, tmp_path / "bin", ignore=shutil.ignore_patterns("model.safetensors"))
    torch.save(hf_model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError

    with pytest.raises(UserError, match=r"needs PyTorch; install the hf extra"):
        load_hf(str(tmp_path / "bin"))


def test_bfloat16_safetensors_load_as_float32(hf_model, hf_dir, imported, tmp_path):
    state = {k: v.to(torch.bfloat16) for k, v in hf_model.state_dict().items()}
    shutil.copytree(hf_dir, tmp_path / "bf16")
    safetensors.torch.save_file(
        {k: v for k, v in state.items() if "decoder" not in k},
        tmp_path / "bf16" / "model.safetensors",
        metadata={"format": "pt"},
    )
    rounded = jax.tree.map(
        lambda x: np.asarray(x.astype(jax.numpy.bfloat16), np.float32), imported.params
    )
    assert_same_params(load_hf(str(tmp_path / "bf16")).params, rounded)


def exported_tensors(hf_dir: str) -> dict[str, np.ndarray]:
    return safetensors.numpy.load_file(os.path.join(hf_dir, "model.safetensors"))


@pytest.mark.parametrize(
    "change, named, reason",
    [
        (
            "add bert.encoder.layer.2.output.dense.bias",
            "bert.encoder.layer.2.output.dense.bias",
            "holds tensors that are no part",
        ),
        ("add cls.predictions.decoder.weight", "cls.predictions.decoder.weight", "differs from"),
        (
            "drop bert.encoder.layer.1.attention.self.key.bias",
            "bert.encoder.layer.1.attention.self.key.bias",
            "lacks the tensors",
        ),
        ("drop cls.seq_relationship.bias", "cls.seq_relationship.bias", "lacks the tensors"),
        (
            "transpose bert.encoder.layer.0.intermediate.dense.weight",
            "bert.encoder.layer.0.intermediate.dense.weight (48, 96) instead of (96, 48)",
            "shapes do not fit",
        ),
    ],
)
def test_inconsistent_checkpoints_fail_naming_the_tensors(hf_dir, tmp_path, change, named, reason):
    tensors = exported_tensors(hf_dir)
    action, name = change.split()
    if action == "add":
        tensors[name] = np.ones_like(tensors["bert.embeddings.word_embeddings.weight"])
    elif action == "drop":
        del tensors[name]
    else:
        tensors[name] = np.ascontiguousarray(tensors[name].T)

    with pytest.raises(UserError, match=reason) as error:
        load_hf(hf_dir_with(tmp_path / "bad", hf_dir, tensors))
    assert named in str(error.value)
    assert "\n" not in str(error.value)


def test_a_vocabulary_larger_than_the_embedding_table_is_refused(hf_dir, tmp_path):
    shutil.copytree(hf_dir, tmp_path / "big")
    vocab = [*VOCAB, *(f"extra{i}" for i in range(HF_CONFIG["vocab_size"]))]
    (tmp_path / "big" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    with pytest.raises(UserError, match=f"has {len(vocab)} pieces but the weights embed only 120"):
        load_hf(str(tmp_path / "big"))


def test_export_refuses_parameters_hf_bert_has_no_name_for(imported, tmp_path):
    params = imported.params | {"adapter": {"kernel": np.zeros((48, 3), np.float32)}}
    with pytest.raises(UserError, match="adapter/kernel"):
        save_hf(str(tmp_path / "out"), Pretrained(imported.config, params, imported.tokenizer))
    assert not (tmp_path / "out").exists()


def test_config_json_mapping():
    data = dict(HF_CONFIG, type_vocab_size=3, layer_norm_eps=1e-7, hidden_dropout_prob=0.25)
    config = from_source_json(data, "config.json")
    assert (config.num_layers, config.num_heads, config.type_vocab_size) == (2, 4, 3)
    assert (config.layer_norm_eps, config.hidden_dropout, config.max_position_embeddings) == (
        1e-7,
        0.25,
        64,
    )
    with pytest.raises(UserError, match="hidden_act='relu'"):
        from_source_json(dict(HF_CONFIG, hidden_act="relu"), "config.json")
    with pytest.raises(UserError, match="lacks num_attention_heads"):
        from_source_json({k: v for k, v in HF_CONFIG.items() if "heads" not in k}, "config.json")


def google_name(hf_name: str) -> tuple[str, bool] | None:
    """Google's name for a Hugging Face BERT tensor and whether it is stored transposed.

    Written from Google's modeling.py naming, independently of bert_jax.convert.names.
    """
    special = {
        "cls.predictions.bias": ("cls/predictions/output_bias", False),
        "cls.seq_relationship.weight": ("cls/seq_relationship/output_weights", False),
        "cls.seq_relationship.bias": ("cls/seq_relationship/output_bias", False),
    }
    if hf_name in special:
        return special[hf_name]
    if "decoder" in hf_name:
        return None  # tied to the word embeddings
    if "_embeddings." in hf_name:
        return hf_name.removesuffix(".weight").replace(".", "/"), False
    name = re.sub(r"layer\.(\d+)\.", r"layer_\1/", hf_name)
    name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
        "LayerNorm.bias", "LayerNorm.beta"
    )
    transposed = name.endswith(".weight")
    return name.replace(".weight", ".kernel").replace(".", "/"), transposed


# What Google's bert_config.json holds: no layer_norm_eps (BERT's 1e-12), no model_type.
GOOGLE_CONFIG_KEYS = (
    *HF_CONFIG,
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "initializer_range",
)


def write_google_checkpoint(directory, arrays: dict[str, np.ndarray]) -> None:
    """A TF1 checkpoint as Google's BERT wrote it: exact variable names, Adam slots, global_step."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        for name, array in arrays.items():
            tf.compat.v1.get_variable(name, initializer=tf.constant(array))
            for slot in ("adam_m", "adam_v"):
                tf.compat.v1.get_variable(f"{name}/{slot}", initializer=tf.zeros(array.shape))
        tf.compat.v1.train.get_or_create_global_step()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, os.path.join(directory, "bert_model.ckpt"))


def test_google_tf_checkpoint_imports_like_hf(hf_model, imported, batch, tmp_path):
    arrays = {}
    for hf_name, tensor in hf_model.state_dict().items():
        if (google := google_name(hf_name)) is not None:
            arrays[google[0]] = tensor.numpy().T if google[1] else tensor.numpy()
    write_google_checkpoint(tmp_path, arrays)
    google_config = {key: hf_model.config.to_dict()[key] for key in GOOGLE_CONFIG_KEYS}
    (tmp_path / "bert_config.json").write_text(json.dumps(google_config))
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")

    pretrained = load_tf(str(tmp_path), do_lower_case=False)

    params = pretrained.params
    query = arrays["bert/encoder/layer_1/attention/self/query/kernel"]
    np.testing.assert_array_equal(
        params["bert"]["encoder"]["layers"]["attention"]["query"]["kernel"][1],
        query.reshape(48, 4, 12),
    )
    output = arrays["bert/encoder/layer_0/attention/output/dense/kernel"]
    np.testing.assert_array_equal(
        params["bert"]["encoder"]["layers"]["attention"]["output"]["kernel"][0],
        output.reshape(4, 12, 48),
    )
    nsp = arrays["cls/seq_relationship/output_weights"]  # [2, H] in Google's checkpoints
    np.testing.assert_array_equal(params["sentence"]["classifier"]["kernel"], nsp.T)
    assert pretrained.config == imported.config
    assert_same_params(params, imported.params)
    differences = max_differences(our_outputs(pretrained, batch), hf_outputs(hf_model, batch))
    assert max(differences.values()) <= TOLERANCE, differences


def test_command_line_round_trip(hf_model, hf_dir, batch, tmp_path):
    def convert(*flags: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "bert_jax.convert", *flags]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)

    pretrained_dir, exported_dir = str(tmp_path / "pretrained"), str(tmp_path / "hf")
    imported = convert("--from=hf", f"--src={hf_dir}", f"--dst={pretrained_dir}")
    assert imported.returncode == 0, imported.stderr[-3000:]
    exported = convert("--to=hf", f"--src={pretrained_dir}", f"--dst={exported_dir}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    again = convert("--to=hf", f"--src={pretrained_dir}", f"--dst={exported_dir}")

    assert sorted(os.listdir(pretrained_dir)) == [
        "bert_config.json",
        "params",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    assert_same_params(load_pretrained(pretrained_dir).params, load_hf(hf_dir).params)
    reloaded = transformers.BertForPreTraining.from_pretrained(exported_dir).eval()
    theirs, ours = hf_outputs(reloaded, batch), hf_outputs(hf_model, batch)
    assert max_differences(theirs, ours) == dict.fromkeys(ours, 0.0)
    assert again.returncode == 1
    assert (
        again.stderr.strip().splitlines()[-1]
        == f"error: {exported_dir} is not empty; choose a new output directory."
    )


def test_training_workdir_exports_to_hf(batch, tmp_path):
    run_config = pretrain_config.get_config()
    shrink_run_model(run_config.model)
    tokenizer = SentencePiece.train(default_corpus()[:30], 200)
    config = from_run_config(run_config, tokenizer.vocab_size)
    workdir = str(tmp_path / "run")
    checkpoints = Checkpoints(workdir, max_to_keep=2, best_metric="eval/mlm_loss", best_mode="min")
    meta = encode_meta(run_config.to_json(), tokenizer, config, {})
    for step in (3, 7):  # the newest is exported
        model = BertForPreTraining(config, sentence_head=True, rngs=nnx.Rngs(step))
        params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
        state = {"micro_step": jax.numpy.int32(step), "params": params, "opt_state": {"mu": params}}
        checkpoints.save(step, state, {"data": {}}, meta)
    checkpoints.wait()
    checkpoints.close()

    pretrained = load_workdir(workdir)
    save_hf(str(tmp_path / "hf"), pretrained)
    save_pretrained(str(tmp_path / "pretrained"), pretrained)

    assert pretrained.config == config
    assert_same_params(pretrained.params, jax.tree.map(np.asarray, params))
    again = load_pretrained(str(tmp_path / "pretrained"))
    assert again.config == config and again.tokenizer.to_bytes() == tokenizer.to_bytes()
    assert_same_params(again.params, pretrained.params)
    assert (tmp_path / "hf" / "sentencepiece.model").read_bytes() == tokenizer.to_bytes()
    assert load_hf(str(tmp_path / "hf")).tokenizer.to_bytes() == tokenizer.to_bytes()
    text = "  Café  naïve: 42 ½ 😀 the end "
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tokenizer(text)["input_ids"] == [2, *tokenizer.encode(text), 3]
    reloaded = transformers.BertForPreTraining.from_pretrained(tmp_path / "hf").eval()
    small_batch = dict(batch, input_ids=batch["input_ids"] % tokenizer.vocab_size)
    differences = max_differences(
        our_outputs(pretrained, small_batch), hf_outputs(reloaded, small_batch)
    )
    assert max(differences.values()) <= TOLERANCE, differences
