"""Masked-LM inputs as BERT made them, vectorized over a batch: 80% [MASK], 10% random, 10% kept."""

from collections.abc import Sequence

import numpy as np


def mask_tokens(
    input_ids: np.ndarray,
    *,
    rng: np.random.Generator,
    masked_lm_prob: float,
    max_predictions: int,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    word_start: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Chooses and corrupts the positions the MLM head predicts, for int [B, S] `input_ids`.

    Each row predicts min(max_predictions, max(1, round(masked_lm_prob * n))) of its n tokens
    that are not in `special_ids`. With `word_start` (bool [vocab_size], see
    `SentencePiece.word_start_mask`) whole words are chosen, skipping any that would overflow that
    number, as BERT's whole-word masking did. Random replacements are drawn from the ids above
    every special id. Returns the corrupted `input_ids` and, per row, `masked_lm_positions`
    (sorted), the original `masked_lm_ids` and `masked_lm_weights`, all [B, max_predictions]
    and zero past the row's count.
    """
    candidates = ~np.isin(input_ids, special_ids)
    count = candidates.sum(axis=1)
    budget = np.where(count > 0, np.clip(np.round(count * masked_lm_prob), 1, max_predictions), 0)
    chosen = _choose(candidates, _group_starts(input_ids, candidates, word_start), budget, rng)

    action = rng.random(input_ids.shape)
    random_ids = rng.integers(max([*special_ids, mask_id]) + 1, vocab_size, input_ids.shape)
    corrupted = np.where(chosen & (action < 0.8), mask_id, input_ids)
    corrupted = np.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, corrupted)

    positions = np.argsort(~chosen, axis=1, kind="stable")[:, :max_predictions]
    weights = np.arange(max_predictions) < chosen.sum(axis=1, keepdims=True)
    positions = np.where(weights, positions, 0)
    return {
        "input_ids": corrupted.astype(np.int32),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": np.where(weights, np.take_along_axis(input_ids, positions, 1), 0).astype(
            np.int32
        ),
        "masked_lm_weights": weights.astype(np.float32),
    }


def _group_starts(
    input_ids: np.ndarray, candidates: np.ndarray, word_start: np.ndarray | None
) -> np.ndarray:
    """Bool [B, S]: candidates that begin a maskable unit (a token, or a word if `word_start`)."""
    if word_start is None:
        return candidates
    after_candidate = np.zeros_like(candidates)
    after_candidate[:, 1:] = candidates[:, :-1]
    return candidates & (word_start[input_ids] | ~after_candidate)


def _choose(
    candidates: np.ndarray, starts: np.ndarray, budget: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Bool [B, S]: whole groups taken in random order while they fit in each row's budget."""
    batch, length = candidates.shape
    group = np.cumsum(starts, axis=1) - 1  # group index of every candidate position
    flat_group = (np.arange(batch)[:, None] * length + group)[candidates]
    sizes = np.bincount(flat_group, minlength=batch * length).reshape(batch, length)
    keys = np.where(sizes > 0, rng.random(sizes.shape), np.inf)  # absent groups sort last
    order = np.argsort(keys, axis=1)
    sorted_sizes = np.take_along_axis(sizes, order, axis=1)
    taken = np.zeros(sizes.shape, bool)
    filled = np.zeros(batch, sizes.dtype)
    for rank in range(int(starts.sum(axis=1).max(initial=0))):
        if (filled >= budget).all():
            break
        size = sorted_sizes[:, rank]
        taken[:, rank] = (size > 0) & (filled + size <= budget)
        filled += np.where(taken[:, rank], size, 0)
    group_taken = np.zeros_like(taken)
    np.put_along_axis(group_taken, order, taken, axis=1)
    return candidates & np.take_along_axis(group_taken, np.maximum(group, 0), axis=1)
