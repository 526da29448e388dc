"""Fine-tuning and prediction: bert_jax against Hugging Face transformers' PyTorch, side by side.

    python benchmarks/finetune_compare.py [--tasks=sst2,ner,squad] [--rounds=1] [--model_dir=HF]
    python benchmarks/finetune_compare.py --quick      # tiny model and budgets: a smoke test

Both frameworks fine-tune the same initial weights (a seeded random BertForPreTraining of the
issue's shape, 6 layers, hidden 384, 12 heads, intermediate 1,536, over a 30,522-piece
WordPiece vocabulary built from SST-2's words, converted for bert_jax with
`python -m bert_jax.convert --from=hf`; or the Hugging Face BERT directory `--model_dir`) on
the same data with the same settings: AdamW (weight decay 0.01 off biases and LayerNorm,
eps 1e-6), linear warmup over 10% of the steps then linear decay, clipping at 1.0, dropout 0.1,
batch 32, the same example budget (`--examples` etc.: steps = examples / batch), rows padded to
`max_seq_length`. Each runs in fresh processes (`jax_finetune.py`, `hf_finetune.py`), one after
the other, alternating which goes first from round to round.

Prints one JSON line per run and, per task, a summary line of medians over rounds with
`ratio_* = jax / pytorch`: fine-tuning examples/s (steady state, from the first log step to the
last), wall time of the fine-tuning (whole process / command), dev accuracy (SST-2; NER and
SQuAD F1 for bert_jax only), and for SST-2 prediction sentences/s on `--predict_sentences`
sentences at batch 32: bert_jax's `python -m bert_jax.predict` as a whole command and its
in-process `Predictor` after a warm-up batch, PyTorch's `torch.inference_mode` loop (rows
padded to the longest of each batch, as its tokenizer does with padding=True).
NER and SQuAD data are synthetic (`finetune_inputs.py`).
"""

import json
import os
import statistics
import subprocess
import sys

import finetune_inputs
from absl import app, flags
from case_file import write_case

from bert_jax import allocator
from bert_jax.benchmark import measure

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/finetune_compare", "Inputs and runs go here.")
flags.DEFINE_string(
    "sst2_dir", os.path.join(os.path.dirname(_REPO), "shared", "data", "sst2"), "GLUE SST-2 TSVs."
)
flags.DEFINE_string("model_dir", None, "A Hugging Face BERT directory; default: random weights.")
flags.DEFINE_list("tasks", ["sst2", "ner", "squad"], "Cases to run: sst2, ner, squad.")
flags.DEFINE_integer("rounds", 1, "Runs of each framework per task.")
flags.DEFINE_integer("examples", 19200, "SST-2 training examples (600 steps of 32).")
flags.DEFINE_integer("ner_examples", 1600, "NER training sentences.")
flags.DEFINE_integer("squad_examples", 640, "SQuAD training windows (one per synthetic question).")
flags.DEFINE_integer("batch_size", 32, "Training examples per step, both frameworks.")
flags.DEFINE_integer("max_seq_length", 64, "SST-2 row length.")
flags.DEFINE_integer("ner_max_seq_length", 128, "NER row length (configs/finetune_ner.py's).")
flags.DEFINE_integer("squad_max_seq_length", 384, "SQuAD window length (finetune_squad.py's).")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate, all tasks.")
flags.DEFINE_float("warmup_fraction", 0.1, "Share of the steps spent warming up.")
flags.DEFINE_integer("log_every_steps", 50, "SST-2 log interval; rates start at the first log.")
flags.DEFINE_integer("predict_sentences", 1821, "SST-2 sentences to predict (dev, then train).")
flags.DEFINE_enum(
    "hf_predict_padding", "longest", ["longest", "max_length"], "PyTorch prediction padding."
)
flags.DEFINE_integer("threads", measure.cpu_count(), "torch.set_num_threads for PyTorch.")
flags.DEFINE_integer("seed", 0, "Initial weights, data order and dropout.")
flags.DEFINE_bool("quick", False, "Tiny model, data and budgets: checks the plumbing in seconds.")

SHAPE = {"num_layers": 6, "hidden_size": 384, "num_heads": 12, "intermediate_size": 1536}
QUICK_SHAPE = {"num_layers": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}
# --quick: (examples, max_seq_length, log_every_steps) per task, batch 8; 40 predictions.
# SQuAD at 256 tokens: every synthetic context (at most 180 words) fits one window.
QUICK = {"sst2": (64, 32, 2), "ner": (32, 32, 2), "squad": (32, 256, 2)}
QUICK_BATCH, QUICK_PREDICT = 8, 40


def _optimizer_settings() -> dict:
    """The fine-tuning configs' optimizer defaults, given to both frameworks explicitly."""
    sys.path.insert(0, os.path.join(_REPO, "configs"))
    import finetune_glue

    opt = finetune_glue.get_config().optimizer
    return {key: opt[key] for key in ("weight_decay", "b1", "b2", "eps", "clip_norm")}


def _cases(paths: dict[str, str]) -> dict[str, dict]:
    """The settings of every requested task, shared verbatim by both frameworks."""
    quick = FLAGS.quick
    batch = QUICK_BATCH if quick else FLAGS.batch_size
    budgets = {
        "sst2": (FLAGS.examples, FLAGS.max_seq_length, FLAGS.log_every_steps),
        "ner": (FLAGS.ner_examples, FLAGS.ner_max_seq_length, 10),
        "squad": (FLAGS.squad_examples, FLAGS.squad_max_seq_length, 5),
    }
    if quick:
        budgets = QUICK
    cases = {}
    for task in FLAGS.tasks:
        if task not in budgets:
            raise app.UsageError(f"--tasks: {task!r} is not one of {', '.join(budgets)}")
        examples, seq_len, log_every = budgets[task]
        steps = max(1, examples // batch)
        cases[task] = {
            "task": task,
            "seed": FLAGS.seed,
            "hf_model": paths["hf_model"],
            "jax_model": paths["jax_model"],
            "train": paths[f"{task}_train"],
            "validation": paths[f"{task}_dev"],
            "max_train_examples": 512 if quick and task == "sst2" else None,
            "max_seq_length": seq_len,
            "batch_size": batch,
            "eval_batch_size": 64,
            "num_train_steps": steps,
            "warmup_steps": int(FLAGS.warmup_fraction * steps),
            "learning_rate": FLAGS.learning_rate,
            "log_every_steps": min(log_every, steps - 1) or 1,
            "optimizer": _optimizer_settings(),
            "hidden_dropout": 0.1,
            "attention_dropout": 0.1,
            "doc_stride": 128,
            "max_query_length": 64,
            "predict_input": paths["predict_input"] if task == "sst2" else None,
            "predict_batch_size": 32,
            "hf_predict_padding": FLAGS.hf_predict_padding,
            "threads": FLAGS.threads,
        }
    return cases


def _run(script: str, case: dict, name: str, round_: int) -> dict:
    """One framework's run of a case in a fresh process; its JSON line."""
    run_dir = os.path.join(FLAGS.workdir, "runs", f"{case['task']}_{name}_{round_}")
    os.makedirs(run_dir, exist_ok=True)
    case = case | {"out_dir": os.path.join(run_dir, "out")}
    case_path = os.path.join(run_dir, "case.json")
    write_case(case_path, case)
    environ = dict(os.environ) | {allocator.ENV_SWITCH: "system"}
    command = [sys.executable, os.path.join(_HERE, script), f"--case={case_path}"]
    result = subprocess.run(
        command, cwd=_REPO, stdout=subprocess.PIPE, text=True, check=True, env=environ
    )
    record = json.loads(result.stdout.strip().splitlines()[-1]) | {"round": round_}
    print(json.dumps(record), flush=True)
    return record


def _median(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return statistics.median(values) if values else None


def _summary(task: str, runs: dict[str, list[dict]]) -> dict:
    jax_runs, hf_runs = runs["jax"], runs["hf"]
    summary = {
        "summary": "finetune_jax_vs_hf",
        "task": task,
        "rounds": len(jax_runs),
        "examples": jax_runs[0]["examples"],
        "batch_size": jax_runs[0]["batch_size"],
        "max_seq_length": jax_runs[0]["max_seq_length"],
        "jax_examples_per_sec": _median(jax_runs, "examples_per_sec"),
        "hf_examples_per_sec": _median(hf_runs, "examples_per_sec"),
        "jax_examples_per_sec_range": [
            min(r["examples_per_sec"] for r in jax_runs),
            max(r["examples_per_sec"] for r in jax_runs),
        ],
        "hf_examples_per_sec_range": [
            min(r["examples_per_sec"] for r in hf_runs),
            max(r["examples_per_sec"] for r in hf_runs),
        ],
        "jax_finetune_command_sec": _median(jax_runs, "finetune_command_sec"),
        "hf_finetune_process_sec": _median(hf_runs, "finetune_process_sec"),
        "hf_train_loop_sec": _median(hf_runs, "train_loop_sec"),
    }
    summary["ratio_examples_per_sec"] = (
        summary["jax_examples_per_sec"] / summary["hf_examples_per_sec"]
    )
    summary["ratio_finetune_wall"] = (
        summary["hf_finetune_process_sec"] / summary["jax_finetune_command_sec"]
    )  # > 1: bert_jax's whole command is faster
    for key in ("dev_accuracy", "dev_f1"):
        if any(key in r for r in jax_runs + hf_runs):
            summary[f"jax_{key}"] = _median(jax_runs, key)
            summary[f"hf_{key}"] = _median(hf_runs, key)
    if "predict_sentences" in jax_runs[0]:
        hf_loop = _median(hf_runs, "predict_loop_sentences_per_sec")
        summary |= {
            "predict_sentences": jax_runs[0]["predict_sentences"],
            "jax_predict_command_sentences_per_sec": _median(
                jax_runs, "predict_command_sentences_per_sec"
            ),
            "jax_predict_in_process_sentences_per_sec": _median(
                jax_runs, "predict_in_process_sentences_per_sec"
            ),
            "hf_predict_loop_sentences_per_sec": hf_loop,
            "hf_predict_load_and_loop_sentences_per_sec": _median(
                hf_runs, "predict_load_and_loop_sentences_per_sec"
            ),
        }
        summary["ratio_predict_command_vs_hf_loop"] = (
            summary["jax_predict_command_sentences_per_sec"] / hf_loop
        )
        summary["ratio_predict_in_process_vs_hf_loop"] = (
            summary["jax_predict_in_process_sentences_per_sec"] / hf_loop
        )
    loads = [r[k] for r in jax_runs + hf_runs for k in r if k.startswith("load_average")]
    summary["load_average_1m_range"] = [min(loads), max(loads)]
    return summary


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    quick = FLAGS.quick
    workdir = os.path.join(FLAGS.workdir, "quick") if quick else FLAGS.workdir
    FLAGS.workdir = workdir
    paths = finetune_inputs.prepare(
        os.path.join(workdir, "inputs"),
        sst2_dir=FLAGS.sst2_dir,
        model_dir=FLAGS.model_dir,
        shape=QUICK_SHAPE if quick else SHAPE,
        vocab_size=measure.BERT_VOCAB_SIZE,
        predict_sentences=QUICK_PREDICT if quick else FLAGS.predict_sentences,
        ner_sentences_count=64 if quick else FLAGS.ner_examples,
        squad_count=64 if quick else FLAGS.squad_examples,
        seed=FLAGS.seed,
        repo=_REPO,
    )
    scripts = {"jax": "jax_finetune.py", "hf": "hf_finetune.py"}
    for task, case in _cases(paths).items():
        runs: dict[str, list[dict]] = {"jax": [], "hf": []}
        for round_ in range(FLAGS.rounds):
            order = ("jax", "hf") if round_ % 2 == 0 else ("hf", "jax")
            for name in order:
                runs[name].append(_run(scripts[name], case, name, round_))
        measure.print_json(_summary(task, runs))


if __name__ == "__main__":
    app.run(main)
