"""How a weights directory holds its tokenizer, the same way in this project's and Hugging Face's:
`vocab.txt` + `tokenizer_config.json` for WordPiece, or a SentencePiece `tokenizer.model`; a
Hugging Face export adds the `tokenizer.json` (and for SentencePiece the `tokenizer_config.json`)
from which `transformers.AutoTokenizer` encodes exactly as this project does.
"""

import json
import os

from bert_jax.convert.config_json import read_json
from bert_jax.data.sentencepiece import SPECIAL_TOKENS, SentencePiece
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.model"  # SentencePiece
HF_TOKENIZER_FILE = "tokenizer.json"  # the `tokenizers` library's format
# In a Hugging Face export the SentencePiece model has this name instead: transformers 5 rebuilds
# a tokenizer from a "tokenizer.model" it finds, without tokenizer.json's [CLS]/[SEP] template.
HF_SENTENCEPIECE_FILE = "sentencepiece.model"

AnyTokenizer = WordPiece | SentencePiece


def read_tokenizer(
    directory: str, vocab_size: int, *, do_lower_case: bool | None = None
) -> AnyTokenizer:
    """The tokenizer in `directory`, checked to fit an embedding table of `vocab_size` rows.

    WordPiece casing: `do_lower_case` if given, else `tokenizer_config.json`'s, else lowercase.
    """
    vocab_path = os.path.join(directory, VOCAB_FILE)
    sentencepiece_path = os.path.join(directory, TOKENIZER_FILE)
    if not os.path.exists(sentencepiece_path):
        sentencepiece_path = os.path.join(directory, HF_SENTENCEPIECE_FILE)
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


def write_tokenizer(
    directory: str, tokenizer: AnyTokenizer, *, hf: bool = False, max_length: int | None = None
) -> None:
    """Writes the tokenizer's files into the existing `directory`; `hf` adds what
    `AutoTokenizer` needs for SentencePiece, and `max_length` its `model_max_length`."""
    specials = dict(zip(_SPECIAL_KEYS, SPECIAL_TOKENS, strict=True))
    limit = {} if max_length is None else {"model_max_length": max_length}
    if hf:
        from bert_jax.convert.tokenizer_json import build_tokenizer

        build_tokenizer(tokenizer).save(os.path.join(directory, HF_TOKENIZER_FILE))
    if isinstance(tokenizer, SentencePiece):
        tokenizer.save(os.path.join(directory, HF_SENTENCEPIECE_FILE if hf else TOKENIZER_FILE))
        if hf:
            options = {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
                **specials,
                **limit,
            }
            _write_json(os.path.join(directory, TOKENIZER_CONFIG_FILE), options)
        return
    tokenizer.save_vocab(os.path.join(directory, VOCAB_FILE))
    options = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": tokenizer.do_lower_case,
        "strip_accents": tokenizer.strip_accents,
        **(specials if hf else {}),
        **limit,
    }
    _write_json(os.path.join(directory, TOKENIZER_CONFIG_FILE), options)


# transformers' names for BERT's special tokens, in the order of SPECIAL_TOKENS.
_SPECIAL_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
