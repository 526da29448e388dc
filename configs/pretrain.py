"""Pretrain a tiny BERT (MLM + SOP) on the embedded default corpus: under 3 minutes on 2 CPU cores.

`get_config` is the quick start: `standard_config` (BERT's pretraining settings at the tiny size)
with what was chosen by measurement so that those 3 minutes visibly learn (README, Quick start):
500 pieces, 20% masking, rows of 64 tokens, sentence-order prediction over ten pairings per
document, no dropout, and the first layer's heads started local (`model.local_init_layers`).
For a real corpus start from BERT's settings instead: `--config=configs/pretrain.py:standard`
(configs/pretrain_lamb.py and pretrain_phase2.py build on them too).

Every key can be overridden on the command line, e.g. `--config.model.preset=mini`; the config is
locked, so a misspelt key is an error instead of a silently ignored setting.
"""

from ml_collections import config_dict

from bert_jax.config_defaults import add_early_stopping, add_runtime, model, optimizer


def get_config(variant: str = "") -> config_dict.ConfigDict:
    """The quick start; `--config=configs/pretrain.py:standard` gives `standard_config()`."""
    if variant == "standard":
        return standard_config()
    if variant:
        raise ValueError(f"no variant {variant!r}: use configs/pretrain.py or "
                         "configs/pretrain.py:standard")  # fmt: skip
    c = standard_config()
    c.batch_size = 64
    c.num_train_steps = 750
    c.warmup_steps = 75
    c.learning_rate = 3e-3  # 2e-3 to 3e-3 leave the plateau; 5e-3 stays on it
    c.eval_every_steps = 250
    c.checkpoint_every_steps = 250
    # NSP stays at its majority share here (the 223 documents' pairs are memorised); SOP learns.
    c.sentence_task = "sop"
    c.data.dupe_factor = 10  # ten splits of each document: SOP generalises instead of memorising
    c.model.local_init_layers = 1  # random init stays on the uniform-attention plateau
    c.model.hidden_dropout = c.model.attention_dropout = 0.0  # slows a few passes, no gain
    c.model.scan_layers = False  # two unrolled layers: faster steps on CPU
    c.data.vocab_size = 500  # held-out MLM accuracy 0.35 at the end; 1,000 pieces: 0.29
    c.data.masked_lm_prob = 0.2  # 0.15 with 500 pieces left SOP at chance
    c.data.max_seq_length = 64
    c.data.eval_fraction = 0.1  # 22 of the corpus's 223 documents held out
    c.data.max_eval_batches = 16  # 1,024 of their pairs
    c.data.num_workers = 0  # a worker process would compete with XLA for the two cores
    c.optimizer.b2 = 0.98
    return c


def standard_config() -> config_dict.ConfigDict:
    """BERT's pretraining settings for the tiny preset: 400 steps of 32 x 128 tokens."""
    c = config_dict.ConfigDict()
    c.batch_size = 32  # global, summed over all devices and processes
    c.num_train_steps = 400  # optimizer updates
    c.warmup_steps = 40
    c.learning_rate = 2e-3
    c.sentence_task = "nsp"  # "nsp", "sop" or "none"; shared by the data and the model
    # Continue pretraining from these weights (a workdir, a converted weights directory, a
    # Hugging Face or Google BERT directory): their architecture and vocabulary, fresh optimizer
    # state. Unset: pretrain from scratch with config.model.
    c.init_from = config_dict.placeholder(str)

    c.log_every_steps = 20
    c.eval_every_steps = 100
    c.checkpoint_every_steps = 100
    c.max_checkpoints_to_keep = 3
    c.histogram_every_steps = 200
    c.best_metric = "eval/mlm_loss"
    c.best_mode = "min"  # "min" or "max"
    add_early_stopping(c)

    add_runtime(c)

    c.model = model("tiny")

    c.data = config_dict.ConfigDict()
    # "default", a text file / glob / comma-separated list, "tfds:NAME", or "prepared:DIR" (made
    # by `python -m bert_jax.prepare`); anything but prepared: is prepared into WORKDIR/prepared.
    c.data.corpus = "default"
    c.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir (local or gs://)
    c.data.split = "train"  # TFDS split
    c.data.text_key = "text"  # TFDS feature holding a document
    # A SentencePiece .model or a WordPiece vocab.txt; unset: train a SentencePiece model.
    c.data.tokenizer = config_dict.placeholder(str)
    c.data.do_lower_case = config_dict.placeholder(bool)  # WordPiece; unset: lowercase
    c.data.vocab_size = 8000  # for a trained tokenizer; a loaded one brings its own
    c.data.tokenizer_sample_sentences = 2_000_000  # a trained tokenizer's seeded corpus sample
    c.data.num_shards = config_dict.placeholder(int)  # unset: one per 64 MiB of text
    c.data.max_seq_length = 128
    c.data.short_seq_prob = 0.1
    c.data.masked_lm_prob = 0.15  # max_predictions_per_seq is derived from this, never set
    c.data.whole_word_masking = False
    c.data.dupe_factor = 2  # passes over the corpus with different pairings
    c.data.eval_fraction = 0.05  # held-out share of documents
    c.data.eval_batch_size = 64
    c.data.max_eval_batches = 8
    c.data.num_workers = 1  # processes reading and masking batches (0: in the training process)
    c.data.prefetch = 4  # batches each worker prepares ahead
    c.data.prepare_workers = 1  # processes preparing a corpus given directly (not prepared:)

    c.optimizer = optimizer()
    return c
