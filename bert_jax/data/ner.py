"""Named-entity recognition data: tagged sentences from CoNLL files, JSON lines or TFDS, encoded
for token classification and predictions decoded back to one tag per word.

A sentence is a list of words with one tag each (BIO tags such as "B-PER", "I-PER", "O"). Each
word is tokenized on its own; the model is trained and read on the first sub-token of every word,
as in the BERT paper's NER setup, so `labels` carry -1 (ignored) everywhere else.
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from bert_jax.data import sources
from bert_jax.data.sources import numbered_lines
from bert_jax.errors import UserError

TaggedSentence = tuple[list[str], list[str]]
"""(words, tags), one tag per word."""

OUTSIDE = "O"
IGNORED = -1
"""Label of positions the loss skips, and word start of a word without a token."""

_DOCSTART = "-DOCSTART-"


class _Encoder(Protocol):
    """What `encode_sentence` needs of a tokenizer (WordPiece and SentencePiece both qualify)."""

    pad_id: int
    cls_id: int
    sep_id: int

    def encode(self, text: str) -> list[int]: ...


def read_conll(path: str) -> list[TaggedSentence]:
    """Sentences of a CoNLL-2003 style file, local or remote (gs://...).

    One token per line with the word in the first whitespace-separated column and the tag in the
    last (columns between, such as POS and chunk tags, are ignored); blank lines end sentences;
    `-DOCSTART-` lines are skipped (and end a sentence).
    """
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in numbered_lines(path):
        columns = line.split()
        if not columns or columns[0] == _DOCSTART:
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        if len(columns) < 2:
            raise UserError(
                f"{path}, line {number}: {line.strip()!r} has one column, but CoNLL lines need "
                "the word first and the tag last; add the tag or fix the separator."
            )
        words.append(columns[0])
        tags.append(columns[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def read_jsonl(
    path: str,
    *,
    tokens_key: str = "tokens",
    tags_key: str = "ner_tags",
    label_names: Sequence[str] | None = None,
) -> list[TaggedSentence]:
    """Sentences of a JSON-lines file: one object per line holding a word list and a tag list.

    Tags are strings, or integers that index `label_names` (as Hugging Face datasets store them).
    Blank lines are skipped.
    """
    sentences = []
    for number, record in sources.json_lines(path):
        where = f"{path}, line {number}"
        if not isinstance(record, dict) or tokens_key not in record or tags_key not in record:
            raise UserError(
                f"{where} is not an object with keys {tokens_key!r} and {tags_key!r}; set the "
                "tokens and tags keys to the names the file uses."
            )
        sentences.append(
            _tagged(record[tokens_key], record[tags_key], label_names, where, tags_key)
        )
    return sentences


def tfds_example_to_sentence(
    example: Mapping[str, Any],
    label_names: Sequence[str] | None,
    *,
    tokens_key: str = "tokens",
    tags_key: str = "ner",
) -> TaggedSentence:
    """One example of a TFDS dataset, as `tfds.as_numpy` yields it, as a tagged sentence.

    For conll2003 the example holds `tokens` (an object array of UTF-8 bytes) and `ner` (an int64
    array indexing the ClassLabel names `label_names`), beside `pos` and `chunks`.
    """
    words = [_text(word) for word in example[tokens_key]]
    tags = [_text(tag) if isinstance(tag, bytes | str) else tag for tag in example[tags_key]]
    return _tagged(words, tags, label_names, "a TFDS example", tags_key)


def load_tfds(
    name: str,
    *,
    split: str,
    data_dir: str | None = None,
    tokens_key: str = "tokens",
    tags_key: str = "ner",
) -> list[TaggedSentence]:
    """Sentences of an already prepared TFDS dataset such as conll2003 (nothing is downloaded).

    conll2003's splits are "train", "dev" and "test"; its tags are read from the ClassLabel names
    of the `ner` feature in the builder's info.
    """
    import tensorflow_datasets as tfds

    dataset, info = sources.load_tfds(name, split=split, data_dir=data_dir)
    for key in (tokens_key, tags_key):
        if key not in info.features:
            raise UserError(
                f"'tfds:{name}' has no feature {key!r}; set the tokens and tags keys to two of "
                f"{sorted(info.features)}."
            )
    label_names = _class_names(info.features[tags_key])
    return [
        tfds_example_to_sentence(example, label_names, tokens_key=tokens_key, tags_key=tags_key)
        for example in tfds.as_numpy(dataset)
    ]


def read_tagged(
    source: str,
    *,
    split: str = "train",
    data_dir: str | None = None,
    tokens_key: str = "tokens",
    tags_key: str | None = None,
    label_names: Sequence[str] | None = None,
) -> list[TaggedSentence]:
    """Sentences of `source`: 'tfds:NAME', a `.jsonl`/`.json` file of JSON lines, or a CoNLL file.

    `split` and `data_dir` apply to TFDS only, `label_names` to JSON lines only; `tags_key=None`
    means the source's usual key ("ner" for TFDS, "ner_tags" for JSON lines).
    """
    if source.startswith("tfds:"):
        sentences = load_tfds(
            source.removeprefix("tfds:"),
            split=split,
            data_dir=data_dir,
            tokens_key=tokens_key,
            tags_key=tags_key or "ner",
        )
    elif source.endswith((".jsonl", ".json")):
        sentences = read_jsonl(
            source,
            tokens_key=tokens_key,
            tags_key=tags_key or "ner_tags",
            label_names=label_names,
        )
    else:
        sentences = read_conll(source)
    if not sentences:
        raise UserError(
            f"{source} holds no tagged sentences; give a CoNLL file, JSON lines or 'tfds:NAME' "
            "with at least one tagged word."
        )
    return sentences


def label_list(sentences: Sequence[TaggedSentence]) -> list[str]:
    """The tags used, sorted, with "O" first (added if absent) so that label id 0 is "O"."""
    tags = {tag for _, sentence_tags in sentences for tag in sentence_tags}
    return [OUTSIDE, *sorted(tags - {OUTSIDE})]


def encode_sentence(
    tokenizer: _Encoder,
    words: Sequence[str],
    tags: Sequence[str],
    label_to_id: Mapping[str, int],
    max_seq_length: int,
) -> dict[str, np.ndarray]:
    """[CLS] tokens [SEP] then padding for one tagged sentence: int32 arrays of [max_seq_length].

    Each word is tokenized on its own. Returns
      input_ids: the token ids, padded with the tokenizer's pad id;
      token_type_ids: zeros;
      attention_mask: 1 on [CLS], tokens and [SEP], 0 on padding;
      labels: the word's label id on the first token of each word, -1 everywhere else (later
        sub-tokens, [CLS], [SEP], padding);
      word_starts: entry i is the position of word i's first token, or -1 when word i has no
        token; entries past the last word are -1.
    A word has no token when it tokenizes to nothing (only control characters, say) or when it
    starts beyond the max_seq_length - 2 token positions (truncation keeps the tokens that fit,
    so a word cut in the middle keeps its first tokens and its label). Words at index
    max_seq_length or later cannot be recorded and are always truncated.
    """
    return _encode(tokenizer.encode, tokenizer, words, tags, label_to_id, max_seq_length)


def encode_sentences(
    tokenizer: _Encoder,
    sentences: Sequence[TaggedSentence],
    label_to_id: Mapping[str, int],
    max_seq_length: int,
) -> dict[str, np.ndarray]:
    """`encode_sentence` of each sentence, stacked: int32 arrays of [len(sentences), S]."""
    # Words repeat a lot across a corpus; tokenize each distinct one once.
    encode = functools.lru_cache(maxsize=1 << 16)(tokenizer.encode)
    rows = [
        _encode(encode, tokenizer, words, tags, label_to_id, max_seq_length)
        for words, tags in sentences
    ]
    keys = ("input_ids", "token_type_ids", "attention_mask", "labels", "word_starts")
    if not rows:
        return {key: np.zeros((0, max_seq_length), np.int32) for key in keys}
    return {key: np.stack([row[key] for row in rows]) for key in keys}


def decode_tags(
    word_count: int,
    word_starts: Sequence[int] | np.ndarray,
    predicted_ids: Sequence[int] | np.ndarray,
    id_to_label: Sequence[str] | Mapping[int, str],
) -> list[str]:
    """One tag per word: the label predicted at the word's first token, "O" for a word without
    a token (empty or truncated).

    `word_starts` is the row `encode_sentence` returned; `predicted_ids` holds a label id per
    token position, e.g. the argmax of the logits, [max_seq_length].
    """
    tags = []
    for index in range(word_count):
        start = int(word_starts[index]) if index < len(word_starts) else IGNORED
        tags.append(OUTSIDE if start < 0 else id_to_label[int(predicted_ids[start])])
    return tags


def _encode(
    encode: Callable[[str], list[int]],
    tokenizer: _Encoder,
    words: Sequence[str],
    tags: Sequence[str],
    label_to_id: Mapping[str, int],
    max_seq_length: int,
) -> dict[str, np.ndarray]:
    """`encode_sentence` with the word tokenization passed in (cached for many sentences)."""
    if len(words) != len(tags):
        raise UserError(
            f"a sentence has {len(words)} words but {len(tags)} tags ({' '.join(words[:8])} "
            "...); give exactly one tag per word."
        )
    if max_seq_length < 3:
        raise UserError(
            f"max_seq_length={max_seq_length} leaves no room for a token between [CLS] and "
            "[SEP]; raise it."
        )
    input_ids = np.full(max_seq_length, tokenizer.pad_id, np.int32)
    labels = np.full(max_seq_length, IGNORED, np.int32)
    word_starts = np.full(max_seq_length, IGNORED, np.int32)
    input_ids[0] = tokenizer.cls_id
    end = 1  # next free position
    last = max_seq_length - 1  # kept for [SEP]
    for index, (word, tag) in enumerate(zip(words, tags, strict=True)):
        label = _label_id(tag, label_to_id)  # checked even for cut words: bad data stays loud
        if end == last or index >= max_seq_length:
            continue
        pieces = encode(word)[: last - end]
        if pieces:
            input_ids[end : end + len(pieces)] = pieces
            labels[end] = label
            word_starts[index] = end
            end += len(pieces)
    input_ids[end] = tokenizer.sep_id
    attention_mask = (np.arange(max_seq_length) <= end).astype(np.int32)
    return {
        "input_ids": input_ids,
        "token_type_ids": np.zeros(max_seq_length, np.int32),
        "attention_mask": attention_mask,
        "labels": labels,
        "word_starts": word_starts,
    }


def _label_id(tag: str, label_to_id: Mapping[str, int]) -> int:
    """The tag's id; a tag the label list lacks (seen only in evaluation data, say) is an error."""
    if tag not in label_to_id:
        raise UserError(
            f"tag {tag!r} is not among the {len(label_to_id)} labels "
            f"({', '.join(list(label_to_id)[:12])}); build the label list from data that holds "
            "every tag, or fix the tag."
        )
    return label_to_id[tag]


def _tagged(
    words: Any, tags: Any, label_names: Sequence[str] | None, where: str, tags_key: str
) -> TaggedSentence:
    """Checks a word list and a tag list (names, or ids into `label_names`) and pairs them."""
    for name, value in (("words", words), ("tags", tags)):
        if not isinstance(value, Sequence | np.ndarray) or isinstance(value, str | bytes):
            raise UserError(f"{where}: the {name} are not a list; give one list of each.")
    if len(words) != len(tags):
        raise UserError(
            f"{where} has {len(words)} words but {len(tags)} tags; give one tag per word."
        )
    names = [_tag_name(tag, label_names, where, tags_key) for tag in tags]
    return [str(word) for word in words], names


def _tag_name(tag: Any, label_names: Sequence[str] | None, where: str, tags_key: str) -> str:
    """A tag given as a name, or as an integer id into `label_names`."""
    if isinstance(tag, str):
        return tag
    if not isinstance(tag, int | np.integer) or isinstance(tag, bool):
        raise UserError(f"{where}: tag {tag!r} is neither a name nor an integer id; fix it.")
    if label_names is None:
        raise UserError(
            f"{where}: {tags_key!r} holds integer tags but no label names were given; pass "
            "label_names listing the tag of each id."
        )
    if not 0 <= tag < len(label_names):
        raise UserError(
            f"{where}: tag id {tag} is outside the {len(label_names)} label names; pass the "
            "full label_names list."
        )
    return label_names[int(tag)]


def _text(value: bytes | str) -> str:
    """TFDS text comes as UTF-8 bytes; hand-made examples may hold str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _class_names(feature: Any) -> list[str] | None:
    """The ClassLabel names of a feature or of a Sequence of them; None for text tags."""
    inner = getattr(feature, "feature", feature)
    names = getattr(inner, "names", None)
    return list(names) if names is not None else None
