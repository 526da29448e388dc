"""Pretrain a tiny BERT (MLM + NSP) on the embedded default corpus: under 3 minutes on 2 CPU cores.

Every key can be overridden on the command line, e.g. `--config.model.preset=mini`; the config is
locked, so a misspelt key is an error instead of a silently ignored setting.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    c.seed = 0
    c.batch_size = 32  # global, summed over all devices and processes
    c.num_train_steps = 400  # optimizer updates
    c.warmup_steps = 40
    c.learning_rate = 2e-3
    c.sentence_task = "nsp"  # "nsp", "sop" or "none"; shared by the data and the model

    c.log_every_steps = 20
    c.eval_every_steps = 100
    c.checkpoint_every_steps = 100
    c.max_checkpoints_to_keep = 3
    c.histogram_every_steps = 200
    c.best_metric = "eval/mlm_loss"
    c.best_mode = "min"  # "min" or "max"

    # Compute dtype: float32, or bfloat16 on TPU/GPU. Parameters and optimizer state stay
    # float32; LayerNorm, softmax and the losses are computed in float32 either way.
    c.dtype = "float32"

    # Devices form a (data, fsdp, tensor) mesh; one size may be -1 to take the rest.
    c.mesh = config_dict.ConfigDict()
    c.mesh.data = -1
    c.mesh.fsdp = 1
    c.mesh.tensor = 1
    # Logical axis (as the model names parameter axes, plus "batch") -> mesh axes.
    c.sharding_rules = (
        ("batch", ("data", "fsdp")),
        ("vocab", "tensor"),
        ("embed", "fsdp"),
        ("heads", "tensor"),
        ("kv", None),
        ("mlp", "tensor"),
        ("layers", None),
    )
    # Peak FLOP/s of one device for MFU; unset: the table for TPUs/GPUs, a measurement on CPU.
    c.peak_flops_per_device = config_dict.placeholder(float)

    c.model = config_dict.ConfigDict()
    c.model.preset = "tiny"  # tiny, mini, small, medium, base, large
    # Overrides of the preset; unset keeps the preset's value.
    c.model.num_layers = config_dict.placeholder(int)
    c.model.hidden_size = config_dict.placeholder(int)
    c.model.num_heads = config_dict.placeholder(int)
    c.model.intermediate_size = config_dict.placeholder(int)
    c.model.max_position_embeddings = 512
    c.model.hidden_dropout = 0.1
    c.model.attention_dropout = 0.1
    c.model.remat = False

    c.data = config_dict.ConfigDict()
    c.data.corpus = "default"  # "default", a path or glob (comma-separated), or "tfds:NAME"
    c.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir (local or gs://)
    c.data.split = "train"  # TFDS split
    c.data.text_key = "text"  # TFDS feature holding a document
    c.data.tokenizer = config_dict.placeholder(str)  # a SentencePiece .model; unset: train one
    c.data.vocab_size = 8000  # for a trained tokenizer; a loaded one brings its own
    c.data.max_seq_length = 128
    c.data.short_seq_prob = 0.1
    c.data.masked_lm_prob = 0.15  # max_predictions_per_seq is derived from this, never set
    c.data.whole_word_masking = False
    c.data.dupe_factor = 2  # passes over the corpus with different pairings
    c.data.eval_fraction = 0.05  # held-out share of documents
    c.data.eval_batch_size = 64
    c.data.max_eval_batches = 8

    c.optimizer = config_dict.ConfigDict()
    c.optimizer.name = "adamw"  # adamw, adam, lamb
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-6
    c.optimizer.weight_decay = 0.01  # never applied to biases or LayerNorm parameters
    c.optimizer.clip_norm = 1.0  # global-norm clipping; 0 disables
    # warmup_linear, warmup_cosine, exponential, step or constant
    c.optimizer.schedule = "warmup_linear"
    c.optimizer.end_learning_rate = 0.0  # for warmup_linear and warmup_cosine
    c.optimizer.decay_rate = 0.5  # exponential: factor per decay_steps; step: factor per boundary
    c.optimizer.decay_steps = 1000  # exponential
    c.optimizer.step_boundaries = (0.5, 0.75)  # step: fractions of num_train_steps
    c.optimizer.grad_accum_steps = 1  # micro-batches per optimizer update (optax.MultiSteps)
    return c
