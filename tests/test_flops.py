"""The MFU numerator, checked against a hand count for BERT-base."""

import pytest

from bert_jax.flops import train_flops_per_step
from bert_jax.model import bert_config


def test_bert_base_flops_by_hand():
    # BERT-base, vocab 30522, batch 32 x 128 tokens, 20 masked positions per sequence.
    base = bert_config("base", 30522)
    tokens = 32 * 128
    per_layer = 4 * 768 * 768 + 2 * 768 * 3072  # 7,077,888 matmul weights
    encoder = 6 * 12 * per_layer * tokens  # 2,087,354,105,856
    attention = 12 * 12 * 768 * 128 * tokens  # 57,982,058,496
    mlm = 6 * (768 * 768 + 768 * 30522) * 32 * 20  # 92,277,964,800
    pooler_and_nsp = 6 * (768 * 768 + 2 * 768) * 32  # 113,541,120
    expected = 2_087_354_105_856 + 57_982_058_496 + 92_277_964_800 + 113_541_120
    assert encoder + attention + mlm + pooler_and_nsp == expected
    assert train_flops_per_step(base, 32, 128, 20, sentence_head=True) == pytest.approx(expected)
    without_head = expected - 6 * 2 * 768 * 32
    assert train_flops_per_step(base, 32, 128, 20, sentence_head=False) == without_head
