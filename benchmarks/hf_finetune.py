"""Hugging Face's side of `finetune_compare.py`: one fine-tuning case in PyTorch; a JSON line.

    python benchmarks/hf_finetune.py --case=CASE.json

What `run_glue.py` / `run_ner.py` / `run_qa.py` and the Trainer do by default, written as a
plain loop so nothing else is timed: rows padded to `max_seq_length` (run_glue's default), a
seeded random order each epoch, train mode (dropout on), `clip_grad_norm_`, fused AdamW without
decay on biases and LayerNorm weights, linear warmup and decay. Examples/s is taken over the
same steps as bert_jax's (from the first log step to the last). SST-2 then reports dev
accuracy and times prediction on the prediction file: the fine-tuned model saved, loaded back
with its tokenizer, and a `torch.inference_mode` loop over batches padded to their longest row.
"""

# ruff: noqa: E402 - the clock starts before the imports, as bert_jax's command time does
import time

_STARTED = time.perf_counter()

import json
import os
import shutil
import sys

import torch
import transformers
from case_file import print_record, read_case
from hf_adamw import adamw

from bert_jax.data.ner import label_list, read_conll

MODELS = {
    "sst2": transformers.BertForSequenceClassification,
    "ner": transformers.BertForTokenClassification,
    "squad": transformers.BertForQuestionAnswering,
}


def read_sst2(path: str) -> tuple[list[str], list[int]]:
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in file if line.strip()]
    text, label = header.index("sentence"), header.index("label")
    return [row[text] for row in rows], [int(row[label]) for row in rows]


def sst2_arrays(tokenizer, path: str, case: dict, limit: int | None) -> dict[str, torch.Tensor]:
    sentences, labels = read_sst2(path)
    encoded = tokenizer(
        sentences[:limit], padding="max_length", truncation=True,
        max_length=case["max_seq_length"], return_tensors="pt",
    )  # fmt: skip
    return dict(encoded) | {"labels": torch.tensor(labels[:limit])}


def ner_arrays(tokenizer, path: str, case: dict, labels: list[str]) -> dict[str, torch.Tensor]:
    """run_ner.py's encoding: the tag on each word's first sub-token, -100 elsewhere."""
    sentences = read_conll(path)[: case.get("max_train_examples")]
    encoded = tokenizer(
        [words for words, _ in sentences], is_split_into_words=True, padding="max_length",
        truncation=True, max_length=case["max_seq_length"],
    )  # fmt: skip
    label_ids = []
    for index, (_, tags) in enumerate(sentences):
        row, previous = [], None
        for word in encoded.word_ids(index):
            first = word is not None and word != previous
            row.append(labels.index(tags[word]) if first else -100)
            previous = word
        label_ids.append(row)
    return {key: torch.tensor(value) for key, value in encoded.items()} | {
        "labels": torch.tensor(label_ids)
    }


def squad_arrays(tokenizer, path: str, case: dict) -> dict[str, torch.Tensor]:
    """run_qa.py's `prepare_train_features`: windows of the context, answer token positions
    (the [CLS] position when the answer is outside a window)."""
    with open(path, encoding="utf-8") as file:
        squad = json.load(file)
    questions, contexts, answers = [], [], []
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                questions.append(qa["question"].lstrip())
                contexts.append(paragraph["context"])
                answers.append(qa["answers"][0])
    limit = case.get("max_train_examples")
    encoded = tokenizer(
        questions[:limit], contexts[:limit], truncation="only_second",
        max_length=case["max_seq_length"], stride=case["doc_stride"],
        return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length",
    )  # fmt: skip
    samples = encoded.pop("overflow_to_sample_mapping")
    starts, ends = [], []
    for index, offsets in enumerate(encoded.pop("offset_mapping")):
        sequence = encoded.sequence_ids(index)
        answer = answers[samples[index]]
        first_char = answer["answer_start"]
        end_char = first_char + len(answer["text"])
        first = sequence.index(1)
        last = len(sequence) - 1 - sequence[::-1].index(1)
        if not (offsets[first][0] <= first_char and offsets[last][1] >= end_char):
            starts.append(0)
            ends.append(0)
            continue
        while first < len(offsets) and offsets[first][0] <= first_char:
            first += 1
        while offsets[last][1] >= end_char:
            last -= 1
        starts.append(first - 1)
        ends.append(last + 1)
    arrays = {key: torch.tensor(value) for key, value in encoded.items()}
    return arrays | {"start_positions": torch.tensor(starts), "end_positions": torch.tensor(ends)}


def train(model, arrays: dict[str, torch.Tensor], case: dict) -> dict:
    """The fine-tuning loop; times all steps and the steps bert_jax's rate covers."""
    opt = case["optimizer"]
    optimizer = adamw(
        model, lr=case["learning_rate"], weight_decay=opt["weight_decay"], b1=opt["b1"],
        b2=opt["b2"], eps=opt["eps"],
    )  # fmt: skip
    steps, batch, log_every = case["num_train_steps"], case["batch_size"], case["log_every_steps"]
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, case["warmup_steps"], steps)
    rows = len(next(iter(arrays.values())))
    generator = torch.Generator().manual_seed(case["seed"])
    order = torch.empty(0, dtype=torch.long)
    model.train()
    losses, first_log_at = [], None
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if len(order) < batch:  # a new epoch (the last partial batch of an epoch is dropped)
            order = torch.randperm(rows, generator=generator)
        picked, order = order[:batch], order[batch:]
        loss = model(**{key: value[picked] for key, value in arrays.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt["clip_norm"])
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step == log_every:
            first_log_at = time.perf_counter()
    end = time.perf_counter()
    timed = steps - log_every
    return {
        "train_loop_sec": end - start,
        "timed_steps": timed,
        "examples_per_sec": timed * batch / (end - first_log_at) if timed > 0 else None,
        "final_train_loss": sum(losses[-log_every:]) / len(losses[-log_every:]),
    }


def accuracy(model, arrays: dict[str, torch.Tensor], batch: int) -> float:
    model.eval()
    correct = 0
    labels = arrays.pop("labels")
    with torch.inference_mode():
        for start in range(0, len(labels), batch):
            chunk = {key: value[start : start + batch] for key, value in arrays.items()}
            correct += (model(**chunk).logits.argmax(-1) == labels[start : start + batch]).sum()
    return float(correct) / len(labels)


def predict(model_dir: str, case: dict) -> dict:
    """Loads the fine-tuned model and tokenizer, then labels every sentence of the file."""
    with open(case["predict_input"], encoding="utf-8") as file:
        sentences = [line.rstrip("\n") for line in file if line.strip()][1:]  # header first
    batch = case["predict_batch_size"]
    start = time.perf_counter()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.BertForSequenceClassification.from_pretrained(model_dir).eval()
    loaded = time.perf_counter()
    records = []
    with torch.inference_mode():
        for first in range(0, len(sentences), batch):
            inputs = tokenizer(
                sentences[first : first + batch], padding=case["hf_predict_padding"],
                truncation=True, max_length=case["max_seq_length"], return_tensors="pt",
            )  # fmt: skip
            probabilities = torch.softmax(model(**inputs).logits, -1)
            for row in probabilities.tolist():
                records.append({"label": int(max(range(len(row)), key=row.__getitem__))})
    done = time.perf_counter()
    assert len(records) == len(sentences)
    return {
        "predict_sentences": len(sentences),
        "predict_batch_size": batch,
        "predict_padding": case["hf_predict_padding"],
        "predict_load_sec": loaded - start,
        "predict_loop_sec": done - loaded,
        "predict_loop_sentences_per_sec": len(sentences) / (done - loaded),
        "predict_load_and_loop_sentences_per_sec": len(sentences) / (done - start),
    }


def main(argv: list[str]) -> None:
    case = read_case(argv, __doc__.splitlines()[0])
    load_before = os.getloadavg()[0]
    torch.set_num_threads(case["threads"])
    torch.manual_seed(case["seed"])
    task = case["task"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(case["hf_model"])
    options = {}
    if task == "sst2":
        arrays = sst2_arrays(tokenizer, case["train"], case, case.get("max_train_examples"))
        options["num_labels"] = 2
    elif task == "ner":
        sentences = read_conll(case["train"])[: case.get("max_train_examples")]
        labels = label_list(sentences)  # the same ids as bert_jax's
        arrays = ner_arrays(tokenizer, case["train"], case, labels)
        options["num_labels"] = len(labels)
    else:
        arrays = squad_arrays(tokenizer, case["train"], case)
    model = MODELS[task].from_pretrained(
        case["hf_model"], hidden_dropout_prob=case["hidden_dropout"],
        attention_probs_dropout_prob=case["attention_dropout"], **options,
    )  # fmt: skip
    record = {
        "framework": "pytorch",
        "task": task,
        "examples": case["num_train_steps"] * case["batch_size"],
        "batch_size": case["batch_size"],
        "max_seq_length": case["max_seq_length"],
        "train_rows": len(arrays["input_ids"]),
        **train(model, arrays, case),
    }
    if task == "sst2":
        dev = sst2_arrays(tokenizer, case["validation"], case, None)
        record["dev_accuracy"] = accuracy(model, dev, case["eval_batch_size"])
    record["finetune_process_sec"] = time.perf_counter() - _STARTED
    if case.get("predict_input"):
        saved = os.path.join(case["out_dir"], "model")
        shutil.rmtree(saved, ignore_errors=True)
        model.save_pretrained(saved)
        tokenizer.save_pretrained(saved)
        record |= predict(saved, case)
    record |= {
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "attn_implementation": model.config._attn_implementation,
        "load_average_1m_before": load_before,
        "load_average_1m_after": os.getloadavg()[0],
    }
    print_record(record)


if __name__ == "__main__":
    main(sys.argv[1:])
