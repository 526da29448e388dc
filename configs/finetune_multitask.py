"""Fine-tune one BERT encoder on several tasks at once, a head per task (as MT-DNN).

    python -m bert_jax.main --config=configs/finetune_multitask.py:sst2,mrpc,ner --workdir=DIR \
        --config.init_from=WEIGHTS_DIR \
        --config.tasks.sst2.data.train=train.tsv --config.tasks.sst2.data.validation=dev.tsv \
        --config.tasks.mrpc.data.train=... --config.tasks.mrpc.data.validation=... \
        --config.tasks.ner.data.train=train.txt --config.tasks.ner.data.validation=valid.txt

The argument after the colon names the tasks: GLUE tasks, classification, regression, ner or
squad, each optionally as NAME=TASK (e.g. `movies=classification,sst2`). Each task gets a section
`tasks.NAME` with its `task`, its sampling `weight` and its `data` (the keys of its own
fine-tuning config; a key left unset there takes the shared `data.*` value, e.g.
`data.max_seq_length`). Steps draw a task by `sampling`: `size` (in proportion to its batches
per epoch), `temperature` (size^(1/sampling_temperature)) or `weights`. Eval metrics are
`eval/NAME/...` and `eval/average` (the mean of each task's main metric, which picks `best/`).
`predict --task=NAME` predicts with that task's head.
"""

from ml_collections import config_dict

from bert_jax.config_defaults import TASK_DATA, add_finetuning

DEFAULT_TASKS = "sst2,mrpc"
_PER_TASK_DATA = ("train", "validation", "train_split", "validation_split", "max_train_examples")


def _kind(task: str) -> str:
    """The data keys' kind of a task name (the run itself checks the name)."""
    return task if task in ("ner", "squad") else "classification"


def _task_section(task: str) -> config_dict.ConfigDict:
    t = config_dict.ConfigDict()
    t.task = task
    t.weight = 1.0  # with sampling="weights"
    t.data = config_dict.ConfigDict()
    t.data.train = config_dict.placeholder(str)  # a file, or tfds:NAME
    t.data.validation = config_dict.placeholder(str)
    t.data.train_split = "train"  # TFDS splits
    t.data.validation_split = "validation"
    t.data.max_train_examples = config_dict.placeholder(int)  # unset: all
    t.data.max_seq_length = config_dict.placeholder(int)  # unset: data.max_seq_length
    TASK_DATA[_kind(task)](t.data)
    return t


def get_config(tasks: str | None = None) -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    add_finetuning(c, task="multitask", max_seq_length=128)
    for key in _PER_TASK_DATA:  # each task has its own
        del c.data[key]
    c.sampling = "size"  # "size", "temperature" or "weights"
    c.sampling_temperature = 2.0  # sampling="temperature": p ~ size^(1/T)
    c.tasks = config_dict.ConfigDict()
    for item in (tasks or DEFAULT_TASKS).split(","):
        name, _, task = item.strip().partition("=")
        c.tasks[name] = _task_section(task or name)
    return c
