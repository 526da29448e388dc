"""An optional structured initialisation: the first layers' heads start looking at nearby tokens.

Randomly initialised BERT attends uniformly at first, and a small budget never leaves that: the
model stays a bag of words predicting unigram frequencies (the quick start's held-out MLM
accuracy sat at 0.13 for 3,000 steps of 64 x 64 tokens, its attention still uniform). Here the
position table starts sinusoidal and head h of the first `local_init_layers` layers starts
attending to the token at a fixed offset (-1, +1, -2, +2, ... across the layers' heads), which is
what a masked token most needs to see. It is only where training starts: every weight stays
trainable and the architecture is BERT's, so export and parity are untouched.

Each head reads `head_dim / 2` of the table's frequency pairs `omega_m = pi (m + 1/2) / pairs`,
a seeded random subset (an evenly spaced one would repeat its peak every `head_dim` positions);
its query rotates position i's table row to position i + offset's, so `q_i . k_j` peaks at
j = i + offset.
"""

import numpy as np

LOCAL_HEAD_GAIN = 4.0
"""Scales the initial query/key kernels (at head_dim 64; kept equivalent at other widths). In
probes on the quick start (1,000 steps of 64 x 64 tokens) gain 1 stayed on the plateau
(held-out MLM accuracy 0.14), gains 2 and 4 left it (0.31, 0.32), 4 sooner (0.26 at step 500)."""


def position_table(rows: int, hidden: int, stddev: float) -> np.ndarray:
    """Float32 [rows, hidden]: sin then cos of each position at `hidden // 2` frequencies spread
    over (0, pi), so rows are nearly orthogonal; scaled to `stddev` per entry."""
    pairs = hidden // 2
    angles = np.arange(rows)[:, None] * _frequencies(pairs)[None]
    table = np.zeros((rows, hidden))
    table[:, :pairs], table[:, pairs : 2 * pairs] = np.sin(angles), np.cos(angles)
    return (table * np.sqrt(2) * stddev).astype(np.float32)


def offset_head_kernels(
    hidden: int, head_dim: int, offset: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Float32 query and key kernels [hidden, head_dim] of one head attending to `offset`."""
    pairs = hidden // 2
    chosen = np.sort(np.random.default_rng(seed).permutation(pairs)[: head_dim // 2])
    select = np.zeros((hidden, head_dim))
    select[chosen, 2 * np.arange(len(chosen))] = 1.0  # sin components
    select[pairs + chosen, 2 * np.arange(len(chosen)) + 1] = 1.0  # cos components
    # rotate maps position i's row to position i + offset's: sin(a + d) and cos(a + d).
    angle = offset * _frequencies(pairs)
    cos, sin, index = np.cos(angle), np.sin(angle), np.arange(pairs)
    rotate = np.zeros((hidden, hidden))
    rotate[index, index], rotate[index, pairs + index] = cos, sin
    rotate[pairs + index, pairs + index], rotate[pairs + index, index] = cos, -sin
    scale = np.sqrt(LOCAL_HEAD_GAIN * 8.0 / np.sqrt(head_dim))
    return (scale * rotate.T @ select).astype(np.float32), (scale * select).astype(np.float32)


def head_offset(index: int) -> int:
    """-1, +1, -2, +2, ... for heads 0, 1, 2, ... numbered across the local layers."""
    return (index // 2 + 1) * (1 if index % 2 else -1)


def _frequencies(pairs: int) -> np.ndarray:
    return np.pi * (np.arange(pairs) + 0.5) / pairs
