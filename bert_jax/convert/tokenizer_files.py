"""How a weights directory holds its tokenizer, the same way in this project's and Hugging Face's:
`vocab.txt` + `tokenizer_config.json` for WordPiece, or a SentencePiece `tokenizer.model`.
"""

import json
import os

from bert_jax.convert.config_json import read_json
from bert_jax.data.sentencepiece import SentencePiece
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.model"  # SentencePiece

AnyTokenizer = WordPiece | SentencePiece


def read_tokenizer(
    directory: str, vocab_size: int, *, do_lower_case: bool | None = None
) -> AnyTokenizer:
    """The tokenizer in `directory`, checked to fit an embedding table of `vocab_size` rows.

    WordPiece casing: `do_lower_case` if given, else `tokenizer_config.json`'s, else lowercase.
    """
    vocab_path = os.path.join(directory, VOCAB_FILE)
    sentencepiece_path = os.path.join(directory, TOKENIZER_FILE)
    if os.path.exists(vocab_path):
        options_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
        options = read_json(options_path) if os.path.exists(options_path) else {}
        if do_lower_case is None:
            do_lower_case = options.get("do_lower_case", True)
        tokenizer = WordPiece.from_vocab_file(
            vocab_path, do_lower_case=do_lower_case, strip_accents=options.get("strip_accents")
        )
    elif os.path.exists(sentencepiece_path):
        tokenizer = SentencePiece.load(sentencepiece_path)
    else:
        raise UserError(
            f"{directory} holds no tokenizer ({VOCAB_FILE} or {TOKENIZER_FILE}); add the "
            "vocabulary the weights were trained with."
        )
    if tokenizer.vocab_size > vocab_size:
        raise UserError(
            f"The tokenizer in {directory} has {tokenizer.vocab_size} pieces but the weights "
            f"embed only {vocab_size}; pair the weights with their own vocabulary."
        )
    return tokenizer


def write_tokenizer(directory: str, tokenizer: AnyTokenizer) -> None:
    """Writes the tokenizer's files into the existing `directory`."""
    if isinstance(tokenizer, SentencePiece):
        tokenizer.save(os.path.join(directory, TOKENIZER_FILE))
        return
    tokenizer.save_vocab(os.path.join(directory, VOCAB_FILE))
    options = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": tokenizer.do_lower_case,
        "strip_accents": tokenizer.strip_accents,
    }
    with open(os.path.join(directory, TOKENIZER_CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(options, file, indent=2)
