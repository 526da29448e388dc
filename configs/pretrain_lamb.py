"""BERT-base (or large) pretraining with LAMB at a global batch of 64k sequences (You et al.
2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"), with NVIDIA's
phase-1 settings (DeepLearningExamples' BERT LAMB recipe): 7,038 updates of 65,536 x 128 tokens,
peak learning rate 6e-3, 28.43% warmup, then phase 2 (configs/pretrain_phase2.py with
`--config.optimizer.name=lamb --config.batch_size=... --config.optimizer.grad_accum_steps=...`
for 1,563 updates of 32,768 x 512 tokens at 4e-3, 12.8% warmup).

    python -m bert_jax.main --config=configs/pretrain_lamb.py --workdir=gs://BUCKET/bert-base \
        --config.data.corpus=prepared:/data/wiki_books_128 \
        --config.batch_size=2048 --config.optimizer.grad_accum_steps=32   # 2048 x 32 = 65,536

What it needs per device: an update is `batch_size` sequences per micro-batch summed over
`grad_accum_steps` micro-batches, so set batch_size = devices x per-device micro-batch and
grad_accum_steps = 65,536 / batch_size. BERT-base at 128 tokens in bfloat16 takes about 64
sequences per 16 GB device (256 on a 32 GB V100 or a TPU v3 core pair is NVIDIA's figure) without
`model.remat`; `model.remat=true` or `mesh.fsdp` raise that. On 8 devices of 16 GB: batch_size=512,
grad_accum_steps=128; on a v4-128 pod slice (64 chips): batch_size=16384, grad_accum_steps=4.
`--config.model.preset=large` is BERT-large (You et al. used 32k for it: grad_accum_steps halves).
"""

from configs import pretrain


def get_config():
    c = pretrain.standard_config()
    c.model.preset = "base"
    c.dtype = "bfloat16"
    c.batch_size = 512  # per micro-batch, global: 8 devices x 64
    c.num_train_steps = 7038  # optimizer updates of 65,536 sequences
    c.warmup_steps = 2000  # 28.43% of 7,038
    c.learning_rate = 6e-3
    c.data.vocab_size = 30522
    c.data.dupe_factor = 5  # BERT's create_pretraining_data default
    c.log_every_steps = 10
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 200
    c.histogram_every_steps = 1000
    c.max_checkpoints_to_keep = 3
    c.optimizer.name = "lamb"
    c.optimizer.weight_decay = 0.01
    c.optimizer.clip_norm = 1.0
    c.optimizer.grad_accum_steps = 128  # 512 x 128 = 65,536 sequences per update
    c.optimizer.schedule = "warmup_linear"  # NVIDIA's poly decay with power 1
    return c
