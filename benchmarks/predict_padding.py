"""Positions each framework computes to predict the comparison's sentences at batch 32, and the
matmul work they take: Hugging Face pads each batch, in input order, to its longest sentence;
bert_jax's Predictor sorts by length into its buckets. Run after `finetune_compare.py`:

    python benchmarks/predict_padding.py [--inputs=/tmp/finetune_compare/inputs] [--buckets=32,64]
"""

import argparse
import glob
import json
import os

import numpy as np
import transformers

from bert_jax.inference import BUCKETS

BATCH = 32
LAYERS, HIDDEN, INTERMEDIATE = 6, 384, 1536  # finetune_compare.SHAPE
MAX_SEQ_LENGTH = 64  # finetune_compare's SST-2 rows


def positions_in_buckets(lengths: np.ndarray, buckets: list[int]) -> int:
    """Rows sorted into the shortest bucket that holds them, batches of BATCH per bucket."""
    total, below = 0, 0
    for bucket in buckets:
        count = int(((lengths > below) & (lengths <= bucket)).sum())
        total += bucket * BATCH * -(-count // BATCH)
        below = bucket
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="/tmp/finetune_compare/inputs")
    parser.add_argument("--buckets", help="Comma-separated lengths; default: the Predictor's.")
    args = parser.parse_args()
    (model_dir,) = glob.glob(os.path.join(args.inputs, "hf_random_*"))
    (sentences_file,) = glob.glob(os.path.join(args.inputs, "predict_*.tsv"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    with open(sentences_file, encoding="utf-8") as file:
        sentences = [line.rstrip("\n").split("\t")[0] for line in file][1:]
    lengths = np.array([len(tokenizer(s)["input_ids"]) for s in sentences])
    chosen = [int(b) for b in args.buckets.split(",")] if args.buckets else BUCKETS
    buckets = sorted({b for b in chosen if b < MAX_SEQ_LENGTH} | {MAX_SEQ_LENGTH})
    counts = {
        "real_tokens": int(lengths.sum()),
        "hf_padded_to_longest": int(
            sum(BATCH * lengths[i : i + BATCH].max() for i in range(0, len(lengths), BATCH))
        ),
        "bert_jax_buckets": positions_in_buckets(lengths, buckets),
    }
    flops_per_position = 2 * LAYERS * (4 * HIDDEN**2 + 2 * HIDDEN * INTERMEDIATE)
    print(json.dumps({
        "sentences": len(sentences),
        "mean_tokens": round(float(lengths.mean()), 1),
        "buckets": buckets,
        "positions": counts,
        "matmul_gflop": {k: round(v * flops_per_position / 1e9) for k, v in counts.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
