"""The GLUE fine-tuning config and a small WordPiece tokenizer, shared by the GLUE data tests."""

from bert_jax.data.sentencepiece import SPECIAL_TOKENS
from bert_jax.data.wordpiece import WordPiece
from configs import finetune_glue

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", ",", ".", '"', "it", "is", "good"]


def tokenizer() -> WordPiece:
    return WordPiece([*SPECIAL_TOKENS, *WORDS], do_lower_case=True)


def config(task: str, **data):
    """configs/finetune_glue.py's config for `task`, with `data.KEY=VALUE` overrides."""
    c = finetune_glue.get_config()
    c.task = task
    for key, value in data.items():
        c.data[key] = value
    return c
