"""bert_jax's side of `finetune_compare.py`: one fine-tuning case as a user runs it; a JSON line.

    python benchmarks/jax_finetune.py --case=CASE.json

Runs `python -m bert_jax.main` with the task's config and the case's settings (a fresh workdir
`out_dir`), reads its examples/s and eval metric back from the event files, then for SST-2
times `python -m bert_jax.predict` as a whole command on the prediction file and, in this
process, `Predictor.predict_lines` after a warm-up batch (load and compile not counted).
"""

import os
import shutil
import sys
import time

from case_file import print_record, read_case
from train_rate import run, train_rate

CONFIGS = {"sst2": "finetune_glue.py", "ner": "finetune_ner.py", "squad": "finetune_squad.py"}
# The eval metric each task reports (the config's main metric).
EVAL_METRIC = {"sst2": "accuracy", "ner": "f1", "squad": "f1"}


def main_command(case: dict, workdir: str) -> list[str]:
    """`bert_jax.main` with every setting of the case explicit, eval and save at the end only."""
    steps, opt = case["num_train_steps"], case["optimizer"]
    settings = {
        "init_from": case["jax_model"],
        "data.train": case["train"],
        "data.validation": case["validation"],
        "data.max_seq_length": case["max_seq_length"],
        "data.eval_batch_size": case["eval_batch_size"],
        "batch_size": case["batch_size"],
        "num_train_steps": steps,
        "warmup_steps": case["warmup_steps"],
        "learning_rate": case["learning_rate"],
        "seed": case["seed"],
        "log_every_steps": case["log_every_steps"],
        "eval_every_steps": steps,
        "checkpoint_every_steps": steps,
        "histogram_every_steps": 10 * steps,
        "model.hidden_dropout": case["hidden_dropout"],
        "model.attention_dropout": case["attention_dropout"],
        "optimizer.weight_decay": opt["weight_decay"],
        "optimizer.b1": opt["b1"],
        "optimizer.b2": opt["b2"],
        "optimizer.eps": opt["eps"],
        "optimizer.clip_norm": opt["clip_norm"],
    }
    if case["task"] == "sst2":
        settings["task"] = "sst2"
    if case["task"] == "squad":
        settings |= {"data.doc_stride": case["doc_stride"]}
        settings |= {"data.max_query_length": case["max_query_length"]}
    if case.get("max_train_examples"):
        settings["data.max_train_examples"] = case["max_train_examples"]
    config = os.path.join("configs", CONFIGS[case["task"]])
    flags = [f"--config.{key}={value}" for key, value in settings.items()]
    main = [sys.executable, "-m", "bert_jax.main", f"--config={config}", f"--workdir={workdir}"]
    return main + flags


def predict_figures(case: dict, workdir: str) -> dict:
    """Sentences/s of the predict command as a whole, and of the in-process Predictor warm."""
    source = case["predict_input"]
    with open(source, encoding="utf-8") as file:
        lines = [line.rstrip("\n") for line in file if line.strip()]
    sentences = len(lines) - 1  # the header line names the column
    batch = case["predict_batch_size"]
    output = os.path.join(workdir, "predictions.jsonl")
    command = [sys.executable, "-m", "bert_jax.predict", f"--workdir={workdir}"]
    command += [f"--input={source}", f"--output={output}", f"--batch_size={batch}"]
    command_sec = run(command)
    with open(output, encoding="utf-8") as file:
        written = sum(1 for _ in file)
    if written != sentences:
        raise RuntimeError(f"predict wrote {written} lines for {sentences} sentences")

    from bert_jax.inference import Predictor

    start = time.perf_counter()
    predictor = Predictor.from_workdir(workdir)
    loaded = time.perf_counter()
    predictor.predict_lines(lines[: batch + 1], batch)  # header + one batch: compiles
    warm = time.perf_counter()
    records = predictor.predict_lines(lines, batch)
    done = time.perf_counter()
    assert len(records) == sentences
    return {
        "predict_sentences": sentences,
        "predict_batch_size": batch,
        "predict_command_sec": command_sec,
        "predict_command_sentences_per_sec": sentences / command_sec,
        "predict_in_process_load_sec": loaded - start,
        "predict_in_process_compile_sec": warm - loaded,
        "predict_in_process_sec": done - warm,
        "predict_in_process_sentences_per_sec": sentences / (done - warm),
    }


def main(argv: list[str]) -> None:
    case = read_case(argv, __doc__.splitlines()[0])
    workdir = case["out_dir"]
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run each round, never a resume
    load_before = os.getloadavg()[0]
    command_sec = run(main_command(case, workdir))

    from bert_jax.events import read_scalars

    rate = train_rate(workdir, case["batch_size"])
    metric = EVAL_METRIC[case["task"]]
    evals = read_scalars(workdir)[f"eval/{metric}"]
    record = {
        "framework": "jax",
        "task": case["task"],
        "examples": case["num_train_steps"] * case["batch_size"],
        "batch_size": case["batch_size"],
        "max_seq_length": case["max_seq_length"],
        "examples_per_sec": rate["examples_per_sec"],
        "timed_steps": rate["timed_steps"],
        "finetune_command_sec": command_sec,
        f"dev_{metric}": evals[max(evals)],
        "load_average_1m_before": load_before,
    }
    if case.get("predict_input"):
        record |= predict_figures(case, workdir)
    record["load_average_1m_after"] = os.getloadavg()[0]
    print_record(record)


if __name__ == "__main__":
    main(sys.argv[1:])
