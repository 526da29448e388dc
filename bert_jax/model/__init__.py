"""BERT in Flax NNX: config and presets, the encoder, and the pretraining heads."""

from bert_jax.model.attention import SelfAttention, padding_bias
from bert_jax.model.bert import BertEncoder, BertModel, EncoderLayer, FeedForward
from bert_jax.model.config import PRESETS, BertConfig, bert_config
from bert_jax.model.embeddings import BertEmbeddings
from bert_jax.model.pretraining_heads import BertForPreTraining, MaskedLMHead, SentencePairHead

__all__ = [
    "PRESETS",
    "BertConfig",
    "BertEmbeddings",
    "BertEncoder",
    "BertForPreTraining",
    "BertModel",
    "EncoderLayer",
    "FeedForward",
    "MaskedLMHead",
    "SelfAttention",
    "SentencePairHead",
    "bert_config",
    "padding_bias",
]
