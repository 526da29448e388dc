"""configs/pretrain.py's two settings: the quick start and `:standard` (BERT's), and what builds on
the standard one."""

import importlib

import pytest

QUICK_START_ONLY = {
    "sentence_task": ("sop", "nsp"),
    "model.local_init_layers": (1, 0),
    "model.hidden_dropout": (0.0, 0.1),
    "model.attention_dropout": (0.0, 0.1),
    "model.scan_layers": (False, True),
    "data.vocab_size": (500, 8000),
    "data.max_seq_length": (64, 128),
    "data.masked_lm_prob": (0.2, 0.15),
    "data.dupe_factor": (10, 2),
}


def value(config, key: str):
    for part in key.split("."):
        config = config[part]
    return config


def test_the_quick_start_and_the_standard_settings_differ_only_where_documented():
    pretrain = importlib.import_module("configs.pretrain")
    quick, standard = pretrain.get_config(), pretrain.get_config("standard")
    for key, (quick_value, standard_value) in QUICK_START_ONLY.items():
        assert (value(quick, key), value(standard, key)) == (quick_value, standard_value), key
    for name in ("pretrain_lamb", "pretrain_phase2"):
        config = importlib.import_module(f"configs.{name}").get_config()
        assert config.model.local_init_layers == 0 and config.model.hidden_dropout == 0.1, name
        assert config.sentence_task == "nsp", name
    with pytest.raises(ValueError, match=r"no variant 'quick'"):
        pretrain.get_config("quick")
