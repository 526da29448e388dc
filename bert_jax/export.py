"""Export a fine-tuned model (or any weights, as embeddings) as a TensorFlow SavedModel for TF
Serving, Vertex AI or any TensorFlow runtime, with orbax-export over jax2tf.

    python -m bert_jax.export --workdir=runs/sst2 --output=exported/sst2 [--checkpoint=latest]
    python -m bert_jax.export --workdir=weights/base --task=embeddings --output=exported/emb

The `serving_default` signature takes token ids (int32 `input_ids`, `token_type_ids`,
`attention_mask`, [batch, length], any batch and length up to the model's positions) and returns
what `predict` returns, as tensors:
  classification: `label` (string), `probability`, `probabilities` [batch, labels] in the order
    of `labels` in the task file; regression: `score`;
  ner: `tags` (string) and `tag_ids` per token (a word's tag is its first token's);
  squad: `start_logits` and `end_logits` per token;
  embeddings: `embedding` [batch, hidden].
Tokenization stays outside the graph: core TensorFlow has neither Unicode NFD normalisation
(BERT's accent stripping) nor a SentencePiece op, so in-graph text would not give this
project's ids. The export carries the tokenizer instead: `assets.extra/tokenizer.json` (the
`tokenizers` library, in Python, Rust or JavaScript, encodes exactly as this project does),
the vocabulary or SentencePiece model, and `task.json`.
"""

import json
import os
import shutil

from absl import app, flags

from bert_jax import console
from bert_jax.cli import fail, no_extra_arguments

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir, or a weights directory.")
flags.DEFINE_string("output", None, "New directory for the SavedModel.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of a workdir.")
flags.DEFINE_enum("task", None, ["embeddings"], "Export any weights' sentence embeddings.")
flags.DEFINE_enum("pooling", "mean", ["mean", "cls"], "--task=embeddings: how tokens are pooled.")
flags.mark_flags_as_required(["workdir", "output"])

ASSETS_DIR = "assets.extra"  # SavedModel's place for files the graph does not read
INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def export_saved_model(predictor, output: str) -> None:
    """Writes `predictor`'s model as a SavedModel at the new directory `output`."""
    import tensorflow as tf
    from orbax.export import ExportManager, JaxModule, ServingConfig

    from bert_jax.convert.pretrained import new_output_dir
    from bert_jax.convert.tokenizer_files import write_tokenizer

    info = predictor.info
    forward = predictor.forward_fn()
    positions = predictor.model_config.max_position_embeddings
    module = JaxModule(
        predictor.params,
        lambda params, inputs: forward(params, [inputs[key] for key in INPUTS]),
        # Any batch and length; the length at most the model's positions, which the
        # embeddings check, so jax2tf must know the bound.
        input_polymorphic_shape=dict.fromkeys(INPUTS, "(b, s)"),
        jax2tf_kwargs={"polymorphic_constraints": (f"s <= {positions}",)},
    )
    signature = [{key: tf.TensorSpec([None, None], tf.int32, name=key) for key in INPUTS}]
    serving = ServingConfig(
        "serving_default", input_signature=signature, tf_postprocessor=_postprocessor(info)
    )
    new_output_dir(output)
    try:
        ExportManager(module, [serving]).save(output)
    except Exception:
        shutil.rmtree(output, ignore_errors=True)  # never leave half a SavedModel behind
        raise
    assets = os.path.join(output, ASSETS_DIR)
    os.makedirs(assets)
    write_tokenizer(assets, predictor.tokenizer, hf=True, max_length=positions)
    with open(os.path.join(assets, "task.json"), "w", encoding="utf-8") as file:
        json.dump(info, file, indent=2)


def _postprocessor(info: dict):
    """TF code from the model's outputs to the records `predict` writes, as tensors."""
    import tensorflow as tf

    kind = info["kind"]
    if kind == "classification" and info["labels"] is None:
        return lambda logits: {"score": logits[:, 0]}
    if kind == "classification":
        names = tf.constant(info["labels"])

        def classify(logits):
            probabilities = tf.nn.softmax(logits, axis=-1)
            best = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return {
                "label": tf.gather(names, best),
                "probability": tf.reduce_max(probabilities, axis=-1),
                "probabilities": probabilities,
            }

        return classify
    if kind == "ner":
        names = tf.constant(info["labels"])

        def tag(logits):
            ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return {"tags": tf.gather(names, ids), "tag_ids": ids}

        return tag
    if kind == "squad":
        return lambda logits: {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
    return lambda vectors: {"embedding": vectors}


def main(argv: list[str]) -> None:
    no_extra_arguments(argv)
    from bert_jax.errors import UserError

    with console.native_stderr_silenced():
        import tensorflow  # noqa: F401 - loaded here, quietly, rather than in the export

        from bert_jax.inference import Predictor

    console.quiet_libraries()
    try:
        predictor = Predictor.from_path(
            FLAGS.workdir, FLAGS.task, which=FLAGS.checkpoint, pooling=FLAGS.pooling
        )
        if predictor.info["kind"] == "fill-mask":
            raise UserError("fill-mask is not exported; export --task=embeddings or a task model.")
        export_saved_model(predictor, FLAGS.output)
    except UserError as error:
        fail(str(error))
    print(f"Wrote the SavedModel {FLAGS.output} ({predictor.info['kind']}).")


if __name__ == "__main__":
    console.silence_startup_noise()
    app.run(main)
