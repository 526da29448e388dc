"""Config sections every experiment shares (runtime, model, optimizer), for `configs/*.py`."""

from ml_collections import config_dict


def add_runtime(c: config_dict.ConfigDict) -> None:
    """Logging cadence is the experiment's; this is how and where it runs."""
    c.seed = 0
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
    # Bytes one device may use; a train step XLA plans larger is refused before training.
    # Unset: what the device reports (GPU, TPU); CPU reports nothing and is not checked.
    c.device_memory_limit_bytes = config_dict.placeholder(int)


def model(preset: str) -> config_dict.ConfigDict:
    m = config_dict.ConfigDict()
    m.preset = preset  # tiny, mini, small, medium, base, large
    # Overrides of the preset; unset keeps the preset's value.
    m.num_layers = config_dict.placeholder(int)
    m.hidden_size = config_dict.placeholder(int)
    m.num_heads = config_dict.placeholder(int)
    m.intermediate_size = config_dict.placeholder(int)
    m.max_position_embeddings = 512
    m.hidden_dropout = 0.1
    m.attention_dropout = 0.1
    # Stddev of freshly initialised weights, new task heads included; unset: the weights' or
    # the preset's (BERT's 0.02). Weights loaded from init_from keep their values.
    m.initializer_range = config_dict.placeholder(float)
    # From scratch only: the first N layers' heads start attending to the tokens at offsets
    # -1, +1, -2, +2, ... over a sinusoidal position table (model/local_init.py); 0 is BERT's
    # random init. Weights loaded from init_from keep their values.
    m.local_init_layers = 0
    m.remat = False  # recompute each layer's activations in the backward pass (saves memory)
    m.remat_policy = "full"  # with remat: "full" keeps only layer inputs, "dots" matmul outputs too
    m.scan_layers = True  # False unrolls the layers: faster steps on CPU, compile grows with depth
    return m


def optimizer(weight_decay: float = 0.01) -> config_dict.ConfigDict:
    o = config_dict.ConfigDict()
    o.name = "adamw"  # adamw, adam, lamb
    o.b1 = 0.9
    o.b2 = 0.999
    o.eps = 1e-6
    o.weight_decay = weight_decay  # never applied to biases or LayerNorm parameters
    o.clip_norm = 1.0  # global-norm clipping; 0 disables
    # warmup_linear, warmup_cosine, exponential, step or constant
    o.schedule = "warmup_linear"
    o.end_learning_rate = 0.0  # for warmup_linear and warmup_cosine
    o.decay_rate = 0.5  # exponential: factor per decay_steps; step: factor per boundary
    o.decay_steps = 1000  # exponential
    o.step_boundaries = (0.5, 0.75)  # step: fractions of num_train_steps
    o.grad_accum_steps = 1  # micro-batches per optimizer update (optax.MultiSteps)
    return o


def add_finetuning(c: config_dict.ConfigDict, *, task: str, max_seq_length: int) -> None:
    """The schedule, cadence and data keys every fine-tuning config shares."""
    c.task = task
    # The weights to start from: a workdir or converted weights directory of this project, a
    # Hugging Face BERT directory or a Google BERT checkpoint directory. Unset: train from
    # scratch with config.model and data.tokenizer.
    c.init_from = config_dict.placeholder(str)
    c.batch_size = 32
    c.num_epochs = 3.0
    c.num_train_steps = config_dict.placeholder(int)  # unset: num_epochs over the train data
    c.warmup_fraction = 0.1
    c.warmup_steps = config_dict.placeholder(int)  # unset: warmup_fraction of the steps
    c.learning_rate = 2e-5

    c.log_every_steps = 50
    c.eval_every_steps = 500  # and after the last step
    c.checkpoint_every_steps = 500
    c.max_checkpoints_to_keep = 2
    c.histogram_every_steps = 1000
    c.best_metric = config_dict.placeholder(str)  # unset: the task's main metric, e.g. eval/f1
    c.best_mode = "max"  # "min" or "max"
    add_early_stopping(c)

    add_runtime(c)
    c.model = model("base")  # used only without init_from

    c.data = config_dict.ConfigDict()
    c.data.train = config_dict.placeholder(str)  # a file, or tfds:NAME
    c.data.validation = config_dict.placeholder(str)
    c.data.train_split = "train"  # TFDS splits
    c.data.validation_split = "validation"
    c.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir
    c.data.tokenizer = config_dict.placeholder(str)  # vocab.txt or .model, without init_from
    c.data.do_lower_case = config_dict.placeholder(bool)  # unset: as the weights say
    c.data.max_seq_length = max_seq_length
    c.data.eval_batch_size = 64
    c.data.max_train_examples = config_dict.placeholder(int)  # unset: all
    # Sentence classification/regression only: each step's batch_size training examples are
    # packed into as few rows as fit (each attends only to itself), so little compute goes to
    # padding; batch_size and the steps still count examples. Evaluation stays unpacked.
    c.data.pack_sequences = False
    c.data.max_segments_per_row = 8  # examples per packed row at most

    c.optimizer = optimizer()


def add_early_stopping(c: config_dict.ConfigDict) -> None:
    """End the run after this many evaluations without `best_metric` improving by more than
    the delta (unset: never); `best/` keeps the best, and a rerun does not train further."""
    c.early_stopping_patience = config_dict.placeholder(int)
    c.early_stopping_min_delta = 0.0


def add_glue_data(data: config_dict.ConfigDict) -> None:
    """Columns of TSV/CSV/JSONL files; unset: the GLUE task's (an index for header-less files)."""
    data.text_a = config_dict.placeholder(str)
    data.text_b = config_dict.placeholder(str)
    data.label = config_dict.placeholder(str)
    data.header = config_dict.placeholder(bool)
    data.labels = config_dict.placeholder(tuple)  # label names, in id order


def add_ner_data(data: config_dict.ConfigDict) -> None:
    """CoNLL files, JSON lines or TFDS conll2003 (whose validation split is `dev`)."""
    data.validation_split = "dev"  # TFDS conll2003's
    data.tokens_key = "tokens"  # JSON lines / TFDS feature holding the words
    data.tags_key = config_dict.placeholder(str)  # unset: ner_tags (JSON lines), ner (TFDS)
    data.labels = config_dict.placeholder(tuple)  # tag names in id order; unset: from train


def add_squad_data(data: config_dict.ConfigDict) -> None:
    """Windows over long contexts and the decoding of answers."""
    data.doc_stride = 128  # tokens between the starts of a long context's windows
    data.max_query_length = 64
    data.n_best_size = 20
    data.max_answer_length = 30  # tokens
    data.version_2 = False  # True: questions may have no answer (SQuAD 2.0)
    data.null_score_diff_threshold = 0.0  # v2: answer "" when null beats the best span by this


# Task kind (tasks/registry.kind_of) -> the data keys its task reads beyond add_finetuning's.
TASK_DATA = {"classification": add_glue_data, "ner": add_ner_data, "squad": add_squad_data}


def add_distillation(c: config_dict.ConfigDict) -> None:
    """The teacher and the loss alpha*CE + (1-alpha)*T^2*KL (+ TinyBERT's layer losses)."""
    # A fine-tuned workdir of this project (its best checkpoint) for the same task and labels,
    # with the student's tokenizer (unset data.tokenizer and init_from: the teacher's).
    c.teacher = config_dict.placeholder(str)
    d = c.distill = config_dict.ConfigDict()
    d.alpha = 0.5  # weight of the cross-entropy with the labels; 1 - alpha: the teacher's
    d.temperature = 2.0  # softens both distributions; the KL term is scaled by T^2
    d.hidden_weight = 0.0  # TinyBERT hidden-state MSE over the layer map (equal widths only)
    d.attention_weight = 0.0  # TinyBERT attention-score MSE over the layer map (equal heads)
    # (student layer, teacher layer) pairs, 0 = the embeddings (hidden states only); unset:
    # student layer m <- teacher layer m * N // M, and the embeddings.
    d.layer_map = config_dict.placeholder(tuple)
