"""Pieces of `python -m bert_jax.benchmark`: timing helpers, the JAX step case, the input rate."""
