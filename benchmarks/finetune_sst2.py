"""Fine-tune on GLUE SST-2 and print one JSON line: dev accuracy, steps/s, examples/s, wall time.

    python benchmarks/finetune_sst2.py --workdir=/tmp/sst2 [--init_from=DIR] [--no-pack]

Without --init_from, the quick start's pretraining (configs/pretrain.py, tiny BERT on the
embedded corpus) runs first into WORKDIR/pretrain, and fine-tuning starts from it; give a
converted Google or Hugging Face BERT directory instead for real figures. The data are the
GLUE SST-2 files in ../shared/data/sst2 (or --data). Extra `--config.KEY=VALUE` flags after `--`
go to the fine-tuning run, e.g. `-- --config.num_train_steps=100` for a short throughput run.
Training packs each step's examples into rows (`data.pack_sequences`, the default);
`--no-pack` trains on one example per row, for comparison. `--batch_size` counts examples
either way.
"""

import argparse
import json
import os
import sys

from train_rate import REPO as _REPO
from train_rate import run, train_rate


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--init_from", help="Weights to fine-tune; default: pretrain first.")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(_REPO), "shared/data/sst2"))
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32, help="Examples per step.")
    parser.add_argument(
        "--pack", action=argparse.BooleanOptionalAction, default=True,
        help="Pack each step's examples into rows (--no-pack: one example per row).",
    )  # fmt: skip
    args, extra = parser.parse_known_args(argv)
    extra = [flag for flag in extra if flag != "--"]

    main_module = [sys.executable, "-m", "bert_jax.main"]
    pretrain_seconds = None
    init_from = args.init_from
    if init_from is None:
        init_from = os.path.join(args.workdir, "pretrain")
        pretrain_seconds = run(
            [*main_module, "--config=configs/pretrain.py", f"--workdir={init_from}"]
        )
    finetune_dir = os.path.join(args.workdir, "sst2")
    seconds = run(
        [
            *main_module,
            "--config=configs/finetune_glue.py",
            f"--workdir={finetune_dir}",
            "--config.task=sst2",
            f"--config.init_from={init_from}",
            f"--config.data.train={os.path.join(args.data, 'train.tsv')}",
            f"--config.data.validation={os.path.join(args.data, 'dev.tsv')}",
            f"--config.data.max_seq_length={args.max_seq_length}",
            f"--config.num_epochs={args.epochs}",
            f"--config.batch_size={args.batch_size}",
            f"--config.data.pack_sequences={args.pack}",
            *extra,
        ]
    )

    from bert_jax.events import read_scalars

    rate = train_rate(finetune_dir, args.batch_size, packed=args.pack)
    accuracy = read_scalars(finetune_dir)["eval/accuracy"]
    record = {
        "task": "sst2",
        "init_from": init_from,
        "epochs": args.epochs,
        "max_seq_length": args.max_seq_length,
        "pack_sequences": args.pack,
        "batch_size": args.batch_size,
        "train_steps": rate["train_steps"],
        "dev_accuracy_final": accuracy[max(accuracy)],
        "dev_accuracy_best": max(accuracy.values()),
        "steps_per_sec": rate["steps_per_sec"],
        "examples_per_sec": rate["examples_per_sec"],
        "finetune_wall_time_sec": seconds,
        "pretrain_wall_time_sec": pretrain_seconds,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
