"""Continued pretraining (`init_from` in a pretraining config): imported Hugging Face weights give
their own outputs before any update and then train; phase 2 continues a phase-1 workdir at 512
tokens with its vocabulary."""

import collections
import json
import os
import re

import numpy as np
import pytest

from conftest import REPO, TINY, read_scalars, run_main, tiny_hf_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> str:
    """A random tiny Hugging Face BertForPreTraining over the default corpus's 400 commonest
    words, with its vocab.txt (uncased)."""
    from bert_jax.data.corpus import default_corpus

    counts = collections.Counter(
        word for doc in default_corpus()[:200] for line in doc
        for word in re.findall(r"[a-z]+", line.lower())
    )  # fmt: skip
    vocab = SPECIALS + sorted(word for word, _ in counts.most_common(400))
    directory = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    config = tiny_hf_config(vocab_size=len(vocab), num_heads=2, max_position_embeddings=512)
    model = transformers.BertForPreTraining(transformers.BertConfig(**config)).eval()
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return str(directory)


def pretrain_config(**overrides):
    """configs/pretrain.py with the tests' tiny settings and `overrides` (dotted keys)."""
    from configs import pretrain

    config = pretrain.get_config()
    for key, value in (TINY | overrides).items():
        section = config
        *parents, last = key.split(".")
        for part in parents:
            section = section[part]
        section[last] = value
    return config


def test_imported_weights_give_their_own_outputs_before_any_update(hf_dir, tmp_path):
    from flax import nnx

    from bert_jax.model.inputs import ENCODER_INPUTS, MLM_INPUTS
    from bert_jax.optim import build_optimizer
    from bert_jax.sharding import make_mesh
    from bert_jax.tasks import pretraining
    from bert_jax.train_state import load_matching_params, state_spec

    config = pretrain_config(init_from=hf_dir)
    task = pretraining.build(config, str(tmp_path / "run"))
    assert task.tokenizer.vocab_size == 405 and task.model_config.vocab_size == 405
    tx, _ = build_optimizer(config)
    spec = state_spec(config, task.model_config, task.build_model, tx, make_mesh(config))
    state = spec.init()
    params = load_matching_params(state["params"], task.pretrained.params, hf_dir)
    batch = task.eval_batches[0]
    ours = nnx.merge(spec.graphdef, params)(
        *(batch[k] for k in ENCODER_INPUTS + MLM_INPUTS), dropout_rng=None
    )
    model = transformers.BertForPreTraining.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        theirs = model(
            input_ids=torch.tensor(np.asarray(batch["input_ids"]), dtype=torch.long),
            token_type_ids=torch.tensor(np.asarray(batch["token_type_ids"]), dtype=torch.long),
            attention_mask=torch.tensor(np.asarray(batch["attention_mask"]), dtype=torch.long),
        )
    positions = np.asarray(batch["masked_lm_positions"])
    hf_mlm = np.take_along_axis(theirs.prediction_logits.numpy(), positions[..., None], axis=1)
    np.testing.assert_allclose(np.asarray(ours["mlm_logits"]), hf_mlm, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ours["sentence_logits"]), theirs.seq_relationship_logits.numpy(), atol=1e-5
    )


@pytest.mark.slow
def test_continued_pretraining_trains_and_phase_2_reads_the_phase_1_workdir(hf_dir, tmp_path):
    phase1 = str(tmp_path / "phase1")
    result = run_main(phase1, init_from=hf_dir, num_train_steps=24, learning_rate=3e-3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"Loaded (\d+) of \1 parameter tensors", result.stderr), result.stderr[-2000:]
    losses = read_scalars(phase1)["train/mlm_loss"]
    assert losses[max(losses)] < losses[min(losses)]
    manifest = json.loads(open(os.path.join(phase1, "prepared", "manifest.json")).read())

    phase2 = str(tmp_path / "phase2")
    command_config = os.path.join(REPO, "configs", "pretrain_phase2.py")
    result = run_main(
        phase2, config=command_config, init_from=phase1, num_train_steps=4,
        batch_size=4, **{"data.eval_batch_size": 4, "data.max_seq_length": 512},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"Loaded (\d+) of \1 parameter tensors", result.stderr)
    manifest2 = json.loads(open(os.path.join(phase2, "prepared", "manifest.json")).read())
    assert manifest2["settings"]["max_seq_length"] == 512
    assert manifest2["tokenizer"]["sha256"] == manifest["tokenizer"]["sha256"]
    assert max(read_scalars(phase2)["train/loss"]) == 4
