import json

import pytest
from pydantic import ValidationError

from model_core.config import ConfigError, ModelConfig, TrainConfig

SEED_SHAPE = {"dim": 384, "dim_ff": 1536, "n_layers": 6, "n_heads": 12, "p_drop_attn": 0.1, "p_drop_hidden": 0.1,
              "max_len": 512, "n_segments": 2, "vocab_size": 30522}


def test_hf_config_and_seed_shape_give_the_same_config(tmp_path, minilm_dir):
    from_hf = ModelConfig.from_json(minilm_dir / "config.json")
    seed_path = tmp_path / "bert.json"
    seed_path.write_text(json.dumps(SEED_SHAPE))
    assert ModelConfig.from_json(seed_path) == from_hf
    assert (from_hf.dim, from_hf.n_layers, from_hf.n_heads, from_hf.layer_norm_eps) == (384, 6, 12, 1e-12)


def test_hf_dict_round_trips_and_transformers_accepts_it(minilm_dir):
    from transformers import BertConfig

    cfg = ModelConfig.from_json(minilm_dir / "config.json")
    hf = cfg.to_hf_dict()
    assert ModelConfig.from_dict(hf) == cfg
    bert = BertConfig(**hf)
    assert (bert.hidden_size, bert.intermediate_size, bert.max_position_embeddings) == (384, 1536, 512)


@pytest.mark.parametrize("change, message", [
    ({"n_heads": 5}, r"dim \(384\) must be divisible by n_heads \(5\)"),
    ({"n_layers": 0}, "n_layers must be a positive integer"),
    ({"vocab_size": -3}, "vocab_size must be a positive integer"),
    ({"p_drop_attn": 1.5}, r"p_drop_attn must be in \[0, 1\)"),
])
def test_impossible_model_configs_are_refused_with_the_field_named(change, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(SEED_SHAPE | change)


def test_missing_fields_and_unsupported_models_are_named(tmp_path):
    with pytest.raises(ConfigError, match="missing field.*n_heads"):
        ModelConfig.from_dict({k: v for k, v in SEED_SHAPE.items() if k != "n_heads"})
    with pytest.raises(ConfigError, match="model_type 'gpt2'"):
        ModelConfig.from_dict({"model_type": "gpt2", "hidden_size": 8})
    bad_json = tmp_path / "config.json"
    bad_json.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read model config"):
        ModelConfig.from_json(bad_json)


def test_train_config_defaults():
    cfg = TrainConfig()
    assert (cfg.seed, cfg.warmup_ratio, cfg.weight_decay) == (42, 0.1, 0.01)
    assert cfg.save_steps is None and cfg.total_steps is None and cfg.grad_clip == 1.0
    assert cfg.auto_fields() == ["epochs", "batch_size", "learning_rate", "max_len", "eval_steps",
                                 "early_stopping_patience", "pooling",
                                 "class_weighting"]


def test_given_values_are_kept_as_given():
    given = {"epochs": 7, "batch_size": 5, "learning_rate": 3e-4, "max_len": 40, "eval_steps": None,
             "early_stopping_patience": 2, "pooling": "cls", "class_weighting": "none"}
    cfg = TrainConfig(**given)
    assert {name: getattr(cfg, name) for name in given} == given and cfg.auto_fields() == []
    from_strings = TrainConfig(epochs="4", learning_rate="1e-4", eval_steps="auto")  # as the CLI passes them
    assert (from_strings.epochs, from_strings.learning_rate, from_strings.eval_steps) == (4, 1e-4, "auto")


@pytest.mark.parametrize("field, value, message", [
    ("epochs", "Auto", "Input should be 'auto' or an integer 1..100"),
    ("max_len", "automatic", "Input should be 'auto' or an integer 8..512"),
    ("max_len", 4, "Input should be 'auto' or an integer 8..512"),
    ("learning_rate", "fast", "Input should be 'auto' or a number in (0, 1]"),
    ("batch_size", 2.5, "Input should be 'auto' or an integer 1..1024"),
    ("early_stopping_patience", 0, "Input should be 'auto', null or an integer >= 1"),
    ("class_weighting", "Balanced", "Input should be 'auto', 'none' or 'balanced'"),
])
def test_a_misspelled_auto_is_one_error_naming_the_field_and_what_it_allows(field, value, message):
    with pytest.raises(ValidationError) as caught:
        TrainConfig(**{field: value})
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [((field,), message)]


@pytest.mark.parametrize("field, value", [
    ("learning_rate", 0), ("batch_size", 0), ("epochs", 0), ("warmup_ratio", 1.0), ("warmup_ratio", -0.1),
    ("max_len", 513),
    ("weight_decay", -1), ("save_steps", 0), ("grad_clip", 0), ("early_stopping_patience", 0), ("pooling", "max"),
])
def test_out_of_range_train_values_name_the_field(field, value):
    with pytest.raises(ValidationError) as caught:
        TrainConfig(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_unknown_train_field_is_refused():
    with pytest.raises(ValidationError, match="learning_rte"):
        TrainConfig(learning_rte=1e-3)


def test_train_config_file_errors_are_config_errors(tmp_path):
    path = tmp_path / "train.json"
    with pytest.raises(ConfigError, match="cannot read training config .*train.json"):
        TrainConfig.from_json(path)
    for content, message in [("{not json", "cannot read training config"), ("[1, 2]", "expected a JSON object"),
                             ('{"lr": 1e-3, "learning_rate": 1e-4}', "either 'lr' or 'learning_rate'")]:
        path.write_text(content)
        with pytest.raises(ConfigError, match=message):
            TrainConfig.from_json(path)
    path.write_text('{"learning_rte": 1e-3}')
    with pytest.raises(ValidationError, match="learning_rte"):
        TrainConfig.from_json(path)
