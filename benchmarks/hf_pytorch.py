"""Hugging Face's PyTorch BertForPreTraining train step, measured like `bert_jax.benchmark`.

    python benchmarks/hf_pytorch.py --preset=small --seq-len=128 --batch=32 --steps=5

The baseline is what the Hugging Face Trainer runs by default: the model in train mode (dropout
on), MLM + NSP loss from `labels` (-100 where nothing is masked) and `next_sentence_label`,
`clip_grad_norm_`, then fused AdamW with weight decay off for biases and LayerNorm weights. The
model has the preset's size and BERT's vocabulary; optimizer settings come from the same config
as ours; the batch is the same synthetic batch; PyTorch uses every core this process may use.
"""

import os

import torch
import transformers
from absl import app, flags
from hf_adamw import adamw
from ml_collections import ConfigDict, config_flags

from bert_jax import allocator
from bert_jax.benchmark import measure
from bert_jax.data.sentence_pairs import max_predictions_per_seq
from bert_jax.model.config import from_run_config

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", os.path.join(_REPO, "configs", "pretrain.py") + ":standard", "Config."
)
flags.DEFINE_list("preset", ["small"], "Model size presets, comma-separated: one case each.")
flags.DEFINE_integer("seq-len", 128, "Tokens per sequence.")
flags.DEFINE_integer("batch", 32, "Sequences per step.")
flags.DEFINE_enum("dtype", "float32", ["float32"], "Compute dtype (float32 only).")
flags.DEFINE_integer("steps", 5, "Timed steps after warm-up.")
flags.DEFINE_integer("warmup", 2, "Untimed steps before timing.")
flags.DEFINE_integer("vocab-size", measure.BERT_VOCAB_SIZE, "Model vocabulary size.")
flags.DEFINE_integer("threads", measure.cpu_count(), "torch.set_num_threads.")


def hf_bert_config(config: ConfigDict, vocab_size: int) -> transformers.BertConfig:
    """Hugging Face's config for our model (preset and any --config.model.* overrides)."""
    ours = from_run_config(config, vocab_size)
    return transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=ours.hidden_size,
        num_hidden_layers=ours.num_layers,
        num_attention_heads=ours.num_heads,
        intermediate_size=ours.intermediate_size,
        hidden_act="gelu",  # exact (erf) GELU, as ours
        hidden_dropout_prob=ours.hidden_dropout,
        attention_probs_dropout_prob=ours.attention_dropout,
        max_position_embeddings=ours.max_position_embeddings,
        type_vocab_size=ours.type_vocab_size,
        layer_norm_eps=ours.layer_norm_eps,
        initializer_range=ours.initializer_range,
    )


def hf_inputs(batch: int, seq_len: int, max_predictions: int, vocab_size: int) -> dict:
    """Our synthetic batch in Hugging Face's form: labels at masked positions, -100 elsewhere."""
    arrays = measure.synthetic_batch(batch, seq_len, max_predictions, vocab_size)
    labels = torch.full((batch, seq_len), -100, dtype=torch.long)
    positions = torch.from_numpy(arrays["masked_lm_positions"]).long()
    labels.scatter_(1, positions, torch.from_numpy(arrays["masked_lm_ids"]).long())
    return {
        "input_ids": torch.from_numpy(arrays["input_ids"]).long(),
        "token_type_ids": torch.from_numpy(arrays["token_type_ids"]).long(),
        "attention_mask": torch.from_numpy(arrays["attention_mask"]).long(),
        "labels": labels,
        "next_sentence_label": torch.from_numpy(arrays["next_sentence_labels"]).long(),
    }


def run_case(config: ConfigDict, seq_len: int, batch: int) -> dict:
    vocab_size = FLAGS["vocab-size"].value
    max_predictions = max_predictions_per_seq(seq_len, config.data.masked_lm_prob)
    hf_config = hf_bert_config(config, vocab_size)
    torch.manual_seed(config.seed)
    model = transformers.BertForPreTraining(hf_config).train()
    opt = config.optimizer
    optimizer = adamw(
        model, lr=config.learning_rate, weight_decay=opt.weight_decay, b1=opt.b1, b2=opt.b2,
        eps=opt.eps,
    )  # fmt: skip
    inputs = hf_inputs(batch, seq_len, max_predictions, vocab_size)

    def run_once() -> None:
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optimizer.clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timing = measure.time_calls(run_once, FLAGS.warmup, FLAGS.steps)
    return {
        "framework": "pytorch",
        "preset": config.model.preset,
        "seq_len": seq_len,
        "batch": batch,
        "dtype": FLAGS.dtype,
        "device_kind": "cpu",
        "num_devices": 1,
        "cpu_count": measure.cpu_count(),
        "allocator": allocator.in_use(),
        "threads": torch.get_num_threads(),
        "load_average_1m": os.getloadavg()[0],
        "steps": FLAGS.steps,
        "warmup": FLAGS.warmup,
        "num_layers": hf_config.num_hidden_layers,
        "hidden_size": hf_config.hidden_size,
        "vocab_size": vocab_size,
        "max_predictions_per_seq": max_predictions,
        "attn_implementation": model.config._attn_implementation,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        **measure.throughput(timing, batch, seq_len),
        "peak_memory_bytes": measure.peak_rss_bytes(),
        "peak_memory_source": "process_rss",
    }


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    torch.set_num_threads(FLAGS.threads)
    for preset in FLAGS.preset:
        config = FLAGS.config.copy_and_resolve_references()
        config.model.preset = preset
        measure.print_json(run_case(config, FLAGS["seq-len"].value, FLAGS.batch))


if __name__ == "__main__":
    app.run(main)
