"""Text sources: the embedded default corpus, BERT-format text files and an on-disk TFDS dataset."""

import hashlib
import json
import re
import subprocess
import sys

import pytest

from bert_jax.data.corpus import default_corpus, load_documents, split_sentences
from bert_jax.errors import UserError

CORPUS_HASH = (
    "import hashlib, json; from bert_jax.data.corpus import default_corpus; "
    "print(hashlib.sha256(json.dumps(default_corpus()).encode()).hexdigest())"
)


def test_default_corpus_is_many_documents_of_english_sentences():
    docs = default_corpus()
    sentences = [s for doc in docs for s in doc]
    assert len(docs) > 100 and len(sentences) > 5000
    assert all(s == " ".join(s.split()) and len(s.split()) >= 4 for s in sentences)
    assert sum(s[-1] in ".!?" for s in sentences) > 0.95 * len(sentences)
    assert sum(" the " in s for s in sentences) > 0.4 * len(sentences)


def test_default_corpus_is_the_same_in_another_process():
    here = hashlib.sha256(json.dumps(default_corpus()).encode()).hexdigest()
    other = subprocess.run(
        [sys.executable, "-c", CORPUS_HASH], capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == here


def test_split_sentences_keeps_prose_and_drops_headings_code_and_fragments():
    text = (
        "The assert statement\n********************\n\n"
        "Assert statements are a convenient way to insert checks.  They cost\n"
        "nothing when optimization is on!  Is that so? Yes.\n\n"
        "   if __debug__:\n       if not expression: raise AssertionError\n\n"
        '   >>> assert 1 + 1 == 2, "math works".\n'
    )
    assert split_sentences(text) == [
        "Assert statements are a convenient way to insert checks.",
        "They cost nothing when optimization is on!",
    ]


def test_text_files_are_read_as_documents_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("Third doc, first line.\n")
    (tmp_path / "a.txt").write_text(
        "First doc, line one.\n  First doc,   line two. \n\n \n\nSecond doc.\n"
    )
    (tmp_path / "notes.md").write_text("Not text corpus.\n")
    expected = [
        ["First doc, line one.", "First doc, line two."],
        ["Second doc."],
        ["Third doc, first line."],
    ]
    assert load_documents(str(tmp_path / "*.txt")) == expected
    listed = f"{tmp_path / 'b.txt'}, {tmp_path / 'a.txt'}"
    assert load_documents(listed) == expected[2:] + expected[:2]


@pytest.mark.parametrize("spec", ["/nonexistent/corpus.txt", "/nonexistent/*.txt"])
def test_missing_files_are_a_user_error_naming_the_key_and_path(spec):
    with pytest.raises(UserError, match=r"data\.corpus.*" + spec.replace("*", r"\*")):
        load_documents(spec)


def test_a_corpus_without_sentences_is_a_user_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n\n")
    with pytest.raises(UserError, match=r"data\.corpus"):
        load_documents(str(tmp_path / "empty.txt"))


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> str:
    """A prepared TFDS dataset 'tiny_text' with two documents, built offline, unregistered."""
    import tensorflow_datasets as tfds

    class TinyText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict({"text": tfds.features.Text()})
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            yield 0, {"text": "A first document starts here. It has two sentences.\n\nHeading"}
            yield 1, {"text": "The second document is short."}

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    TinyText(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_tfds_dataset_is_read_from_data_dir(tfds_dir):
    docs = load_documents("tfds:tiny_text", data_dir=tfds_dir)
    assert sorted(docs) == [
        ["A first document starts here.", "It has two sentences."],
        ["The second document is short."],
    ]


@pytest.mark.parametrize(
    "spec, options, key",
    [
        ("tfds:no_such_dataset", {}, "no_such_dataset"),
        ("tfds:tiny_text", {"split": "validation"}, "validation"),
        ("tfds:tiny_text", {"text_key": "body"}, "body"),
    ],
)
def test_unusable_tfds_dataset_is_a_user_error(tfds_dir, spec, options, key):
    with pytest.raises(UserError, match=re.escape(f"data.corpus='{spec}'") + f".*{key}"):
        load_documents(spec, data_dir=tfds_dir, **options)
