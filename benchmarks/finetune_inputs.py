"""What both frameworks of `finetune_compare.py` start from: one vocabulary, one set of initial
weights (a Hugging Face directory and the same weights converted for bert_jax), and the data.

No BERT vocabulary can be downloaded here, so the WordPiece `vocab.txt` is built from SST-2's
own words (as BERT's basic tokenizer splits them) plus BERT's special tokens, every character
and its `##` continuation, padded with `[unusedN]` entries to the requested size (30,522 like
BERT's): SST-2 text then never needs `[UNK]`. NER and SQuAD data are synthetic, drawn from the
same words with a seeded generator, so both frameworks train on identical files:
- NER: a CoNLL file whose entities are words of four disjoint pools (PER, ORG, LOC, MISC), so
  the tags are learnable from the words;
- SQuAD: v1.1 JSON whose answer is the span after a two-word cue that the question repeats.
"""

import collections
import json
import os
import subprocess
import sys

import numpy as np

_SPECIALS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
_ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")


def sst2_sentences(path: str) -> list[str]:
    """The `sentence` column of a GLUE SST-2 TSV file (header first)."""
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        column = header.index("sentence")
        return [line.rstrip("\n").split("\t")[column] for line in file if line.strip()]


def basic_words(sentences: list[str]) -> collections.Counter:
    """Word counts as BERT's uncased basic tokenizer splits the text (punctuation apart)."""
    from tokenizers import normalizers, pre_tokenizers

    normalize = normalizers.BertNormalizer(lowercase=True).normalize_str
    split = pre_tokenizers.BertPreTokenizer().pre_tokenize_str
    counts: collections.Counter = collections.Counter()
    for sentence in sentences:
        counts.update(word for word, _ in split(normalize(sentence)))
    return counts


def build_vocab(words: collections.Counter, size: int) -> list[str]:
    """BERT's layout (specials at 0 and 100-103, `[unusedN]` between), then every character
    and its `##` form, then the words by frequency; padded with `[unusedN]` to `size`."""
    chars = sorted({char for word in words for char in word})
    pieces = [*chars, *(f"##{char}" for char in chars)]
    known = set(pieces)
    pieces += [word for word, _ in words.most_common() if word not in known]
    fixed = max(_SPECIALS) + 1
    if fixed + len(pieces) > size:
        raise ValueError(f"{fixed + len(pieces)} pieces do not fit a vocabulary of {size}")
    vocab = [_SPECIALS.get(i, f"[unused{i}]") for i in range(fixed)] + pieces
    return vocab + [f"[unused{i}]" for i in range(len(vocab), size)]


def write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.writelines(f"{line}\n" for line in lines)


def word_pool(words: collections.Counter, limit: int = 4000) -> list[str]:
    """Frequent purely alphabetic words: the material of the synthetic NER and SQuAD data."""
    return [word for word, _ in words.most_common() if word.isalpha()][:limit]


def ner_sentences(pool: list[str], count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """`count` sentences of 8-40 words; 1-3 entities of 1-3 words each, from per-type pools."""
    rng = np.random.default_rng(seed)
    plain, entity_words = pool[: len(pool) // 2], pool[len(pool) // 2 :]
    per_type = np.array_split(np.array(entity_words), len(_ENTITY_TYPES))
    sentences = []
    for _ in range(count):
        words = list(rng.choice(plain, rng.integers(8, 41)))
        tags = ["O"] * len(words)
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(len(_ENTITY_TYPES)))
            span = list(rng.choice(per_type[kind], rng.integers(1, 4)))
            at = int(rng.integers(0, len(words) + 1))
            name = _ENTITY_TYPES[kind]
            words[at:at] = span
            tags[at:at] = [f"B-{name}"] + [f"I-{name}"] * (len(span) - 1)
        sentences.append((words, tags))
    return sentences


def write_conll(path: str, sentences: list[tuple[list[str], list[str]]]) -> None:
    """CoNLL-2003 layout: one `word tag` line per word, a blank line after each sentence."""
    lines = []
    for words, tags in sentences:
        lines += [f"{word} {tag}" for word, tag in zip(words, tags, strict=True)] + [""]
    write_lines(path, lines)


def squad_json(pool: list[str], count: int, seed: int, prefix: str) -> dict:
    """SQuAD v1.1 JSON: contexts of 60-180 words; the answer (1-4 words) follows a two-word cue
    that the question quotes, so a model can learn to find it."""
    rng = np.random.default_rng(seed)
    paragraphs = []
    for number in range(count):
        words = list(rng.choice(pool, rng.integers(60, 181)))
        at = int(rng.integers(2, len(words) - 4))
        answer = words[at : at + int(rng.integers(1, 5))]
        before = " ".join(words[:at]) + " "
        context = before + " ".join(words[at:])
        question = f"what comes after {words[at - 2]} {words[at - 1]} ?"
        answers = [{"text": " ".join(answer), "answer_start": len(before)}]
        qa = {"id": f"{prefix}{number}", "question": question, "answers": answers}
        paragraphs.append({"context": context, "qas": [qa]})
    return {"version": "1.1", "data": [{"title": "synthetic", "paragraphs": paragraphs}]}


def write_json(path: str, value: dict) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(value, file)


def make_random_model(directory: str, shape: dict, vocab: list[str], seed: int) -> None:
    """A seeded, randomly initialised Hugging Face BertForPreTraining with this vocabulary."""
    import torch
    import transformers

    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=shape["hidden_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        intermediate_size=shape["intermediate_size"],
        hidden_act="gelu",
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    transformers.BertForPreTraining(config).save_pretrained(directory)
    write_tokenizer_files(directory, vocab)


def write_tokenizer_files(directory: str, vocab: list[str]) -> None:
    """An uncased WordPiece tokenizer as Hugging Face and bert_jax both read it."""
    os.makedirs(directory, exist_ok=True)
    write_lines(os.path.join(directory, "vocab.txt"), vocab)
    write_json(
        os.path.join(directory, "tokenizer_config.json"),
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True},
    )


def convert_for_jax(hf_dir: str, jax_dir: str, repo: str) -> None:
    """The same weights as a bert_jax weights directory, by the project's own converter."""
    command = [sys.executable, "-m", "bert_jax.convert", "--from=hf", f"--src={hf_dir}"]
    subprocess.run([*command, f"--dst={jax_dir}"], cwd=repo, check=True)


def prepare(
    workdir: str,
    *,
    sst2_dir: str,
    model_dir: str | None,
    shape: dict,
    vocab_size: int,
    predict_sentences: int,
    ner_sentences_count: int,
    squad_count: int,
    seed: int,
    repo: str,
) -> dict[str, str]:
    """Writes (once: files already there are kept) every input into `workdir`; their paths."""
    os.makedirs(workdir, exist_ok=True)
    if model_dir is None:
        tag = "L{num_layers}_H{hidden_size}_A{num_heads}_I{intermediate_size}".format(**shape)
        hf_model = os.path.join(workdir, f"hf_random_{tag}_V{vocab_size}_seed{seed}")
    else:
        hf_model = os.path.abspath(model_dir)
    jax_model = os.path.join(workdir, "jax_" + hf_model.strip("/").replace("/", "_"))
    paths = {
        "sst2_train": os.path.join(sst2_dir, "train.tsv"),
        "sst2_dev": os.path.join(sst2_dir, "dev.tsv"),
        "predict_input": os.path.join(workdir, f"predict_{predict_sentences}.tsv"),
        "ner_train": os.path.join(workdir, f"ner_train_{ner_sentences_count}.txt"),
        "ner_dev": os.path.join(workdir, "ner_dev.txt"),
        "squad_train": os.path.join(workdir, f"squad_train_{squad_count}.json"),
        "squad_dev": os.path.join(workdir, "squad_dev.json"),
        "hf_model": hf_model,
        "jax_model": jax_model,
    }
    train_sentences = sst2_sentences(paths["sst2_train"])
    dev_sentences = sst2_sentences(paths["sst2_dev"])
    words = basic_words(train_sentences + dev_sentences)
    if model_dir is None and not os.path.exists(os.path.join(paths["hf_model"], "config.json")):
        make_random_model(paths["hf_model"], shape, build_vocab(words, vocab_size), seed)
    if not os.path.exists(os.path.join(paths["jax_model"], "bert_config.json")):
        convert_for_jax(paths["hf_model"], paths["jax_model"], repo)
    if not os.path.exists(paths["predict_input"]):
        # The dev sentences, then train sentences from the end of the file, as many as asked.
        chosen = (dev_sentences + train_sentences[::-1])[:predict_sentences]
        write_lines(paths["predict_input"], ["sentence", *chosen])
    pool = word_pool(words)
    if not os.path.exists(paths["ner_train"]):
        write_conll(paths["ner_train"], ner_sentences(pool, ner_sentences_count, seed))
        write_conll(paths["ner_dev"], ner_sentences(pool, 200, seed + 1))
    if not os.path.exists(paths["squad_train"]):
        write_json(paths["squad_train"], squad_json(pool, squad_count, seed, "train"))
        write_json(paths["squad_dev"], squad_json(pool, 100, seed + 1, "dev"))
    return paths
