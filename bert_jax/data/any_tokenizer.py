"""Either tokenizer (WordPiece from a vocab.txt, or SentencePiece) as JSON-safe checkpoint data.

Every checkpoint carries its tokenizer, so a checkpoint alone is enough to predict or export.
"""

import base64
import json

from bert_jax.data.sentencepiece import SentencePiece
from bert_jax.data.wordpiece import WordPiece

AnyTokenizer = WordPiece | SentencePiece


def tokenizer_to_meta(tokenizer: AnyTokenizer) -> dict[str, str]:
    """{"tokenizer": base64 SentencePiece model} or {"wordpiece": JSON of vocab and casing}."""
    if isinstance(tokenizer, SentencePiece):
        return {"tokenizer": base64.b64encode(tokenizer.to_bytes()).decode("ascii")}
    options = {
        "vocab": tokenizer.vocab,
        "do_lower_case": tokenizer.do_lower_case,
        "strip_accents": tokenizer.strip_accents,
    }
    return {"wordpiece": json.dumps(options)}


def tokenizer_from_meta(meta: dict[str, str]) -> AnyTokenizer:
    if "wordpiece" in meta:
        options = json.loads(meta["wordpiece"])
        return WordPiece(
            options["vocab"],
            do_lower_case=options["do_lower_case"],
            strip_accents=options["strip_accents"],
        )
    return SentencePiece.from_bytes(base64.b64decode(meta["tokenizer"]))
