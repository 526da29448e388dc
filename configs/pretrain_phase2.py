"""Phase 2 of BERT's pretraining: continue a phase-1 run at 512 tokens, as BERT and NVIDIA do.

    python -m bert_jax.main --config=configs/pretrain_phase2.py --workdir=runs/phase2 \
        --config.init_from=runs/phase1

The phase-1 workdir gives the weights and the vocabulary (its prepared corpus's tokenizer); the
corpus is prepared again at 512 tokens into this workdir (or give `data.corpus=prepared:DIR`
prepared at 512), with a fresh optimizer and schedule: BERT ran the last 10% of its updates at
512 tokens, NVIDIA's LAMB recipe 1,563 updates of 32k sequences (configs/pretrain_lamb.py).
Every other key is `configs/pretrain.py:standard`'s (BERT's settings, not the quick start's),
to override like any run.
"""

from configs import pretrain


def get_config():
    c = pretrain.standard_config()
    c.data.max_seq_length = 512  # max_predictions_per_seq follows: ceil(0.15 * 512) = 77
    c.batch_size = 8  # sequences are 4x longer than phase 1's
    c.num_train_steps = 100
    c.warmup_steps = 10
    c.learning_rate = 1e-3
    c.log_every_steps = 10
    c.eval_every_steps = 50
    c.checkpoint_every_steps = 50
    c.data.eval_batch_size = 16
    return c
