"""benchmarks/finetune_compare.py: its shared inputs, the PyTorch side's encodings, and a quick
end-to-end run of both frameworks."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import finetune_inputs  # noqa: E402 - a benchmark script's module

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the film 's sharp edges and a nonchalant , off-kilter wit",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
]


@pytest.fixture(scope="module")
def words():
    return finetune_inputs.basic_words(SENTENCES * 50)


def test_vocab_covers_the_words_without_unknowns(tmp_path, words):
    from bert_jax.data.wordpiece import WordPiece

    vocab = finetune_inputs.build_vocab(words, 300)
    assert len(vocab) == 300 and len(set(vocab)) == 300
    assert [vocab[i] for i in (0, 100, 101, 102, 103)] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    ]  # fmt: skip
    path = tmp_path / "vocab.txt"
    finetune_inputs.write_lines(str(path), vocab)
    tokenizer = WordPiece.from_vocab_file(str(path), do_lower_case=True)
    for sentence in SENTENCES + ["Unseen WORDS spelt from known letters"]:
        assert tokenizer.unk_id not in tokenizer.encode(sentence), sentence
    with pytest.raises(ValueError):
        finetune_inputs.build_vocab(words, 120)


def test_synthetic_data_reads_back_with_bert_jax_readers(tmp_path, words):
    from bert_jax.data.ner import read_conll
    from bert_jax.data.squad_examples import read_squad_json

    pool = finetune_inputs.word_pool(words)
    sentences = finetune_inputs.ner_sentences(pool, 20, seed=0)
    finetune_inputs.write_conll(str(tmp_path / "ner.txt"), sentences)
    assert read_conll(str(tmp_path / "ner.txt")) == sentences
    tags = {tag for _, sentence_tags in sentences for tag in sentence_tags}
    assert {"O", "B-PER", "I-PER"} <= tags
    for words_, sentence_tags in sentences:  # every entity starts with B-
        for previous, tag in zip(["O", *sentence_tags], sentence_tags, strict=False):
            assert not tag.startswith("I-") or previous[2:] == tag[2:]
        assert len(words_) == len(sentence_tags)

    finetune_inputs.write_json(
        str(tmp_path / "squad.json"), finetune_inputs.squad_json(pool, 10, seed=0, prefix="q")
    )
    examples = read_squad_json(str(tmp_path / "squad.json"))  # checks every answer_start
    assert len(examples) == 10 and len({e.id for e in examples}) == 10
    for example in examples:
        cue = example.question.split()[3:5]
        before = example.context[: example.answer_starts[0]].split()
        assert before[-2:] == cue


def test_hf_encodings_label_first_subtokens_and_answer_spans(tmp_path, words):
    pytest.importorskip("transformers")
    import hf_finetune
    import transformers

    model_dir = tmp_path / "hf"
    finetune_inputs.write_tokenizer_files(str(model_dir), finetune_inputs.build_vocab(words, 300))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    pool = finetune_inputs.word_pool(words) + ["nonchalantly"]  # split into several pieces
    sentences = finetune_inputs.ner_sentences(pool, 8, seed=1)
    finetune_inputs.write_conll(str(tmp_path / "ner.txt"), sentences)
    case = {"max_seq_length": 128, "doc_stride": 32, "max_train_examples": None}
    labels = sorted({tag for _, tags in sentences for tag in tags})
    arrays = hf_finetune.ner_arrays(tokenizer, str(tmp_path / "ner.txt"), case, labels)
    for row, (_, tags) in zip(arrays["labels"].numpy(), sentences, strict=True):
        assert [labels[i] for i in row if i >= 0] == tags  # one label per word, in order

    squad = finetune_inputs.squad_json(pool, 6, seed=2, prefix="q")
    finetune_inputs.write_json(str(tmp_path / "squad.json"), squad)
    case["max_seq_length"] = 256
    arrays = hf_finetune.squad_arrays(tokenizer, str(tmp_path / "squad.json"), case)
    answers = [p["qas"][0]["answers"][0]["text"] for p in squad["data"][0]["paragraphs"]]
    assert len(arrays["input_ids"]) == len(answers)  # each context fits one window
    for ids, start, end, answer in zip(
        arrays["input_ids"].numpy(), arrays["start_positions"], arrays["end_positions"], answers,
        strict=True,
    ):  # fmt: skip
        assert 0 < start <= end
        assert tokenizer.decode(ids[start : end + 1]) == answer


@pytest.mark.slow
def test_quick_comparison_runs_both_frameworks(tmp_path):
    """One quick SST-2 round: both JSON lines with their figures, and the summary of them."""
    pytest.importorskip("transformers")
    script = os.path.join(REPO, "benchmarks", "finetune_compare.py")
    command = [sys.executable, script, "--quick", "--tasks=sst2", f"--workdir={tmp_path}"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ours, hf, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert (ours["framework"], hf["framework"]) == ("jax", "pytorch")
    for record in (ours, hf):
        assert (record["task"], record["examples"], record["batch_size"]) == ("sst2", 64, 8)
        assert record["examples_per_sec"] > 0 and record["predict_sentences"] == 40
        assert 0.0 <= record["dev_accuracy"] <= 1.0
    assert ours["predict_command_sentences_per_sec"] > 0
    assert ours["predict_in_process_sentences_per_sec"] > 0
    assert hf["predict_loop_sentences_per_sec"] > 0
    assert summary["ratio_examples_per_sec"] == pytest.approx(
        ours["examples_per_sec"] / hf["examples_per_sec"]
    )
    assert summary["ratio_predict_in_process_vs_hf_loop"] == pytest.approx(
        ours["predict_in_process_sentences_per_sec"] / hf["predict_loop_sentences_per_sec"]
    )
    assert np.isfinite(hf["final_train_loss"])
    # The same initial weights on both sides: bert_jax's converted copy of the PyTorch model.
    inputs = os.listdir(os.path.join(tmp_path, "quick", "inputs"))
    assert sum(name.startswith("hf_random_L2_H32") for name in inputs) == 1
    assert sum(name.startswith("jax_") for name in inputs) == 1
