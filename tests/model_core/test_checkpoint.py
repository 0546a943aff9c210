import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from model_core.checkpoint import MEAN_POOLING_CODE, CheckpointError, load_model, load_pretrained_encoder, save_model
from model_core.config import ModelConfig
from model_core.model import Classifier
from model_core.tokenization import Tokenizer

from .conftest import FINETUNE_MAX_LEN, LABELS, PAIRS, TEXTS


def logits_of(model, tokenizer, max_len=FINETUNE_MAX_LEN):
    batch = tokenizer.encode(TEXTS, PAIRS, max_len)
    with torch.no_grad():
        return model(batch.input_ids, batch.segment_ids, batch.input_mask)


SAVED = {"cls": ("minilm_classifier", "saved_classifier_dir"), "mean": ("minilm_mean_classifier",
                                                                     "saved_mean_classifier_dir")}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_save_then_load_gives_identical_logits(request, pooling, minilm_tokenizer):
    model, model_dir = (request.getfixturevalue(name) for name in SAVED[pooling])
    loaded = load_model(model_dir)
    assert loaded.labels == LABELS and loaded.max_len == FINETUNE_MAX_LEN
    assert not loaded.model.training and loaded.model.pooling == pooling
    assert torch.equal(logits_of(loaded.model, loaded.tokenizer), logits_of(model, minilm_tokenizer))


def test_saved_dir_is_what_transformers_expects(saved_classifier_dir, hf_tokenizer):
    config = json.loads((saved_classifier_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["model_type"] == "bert"
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert config["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
    assert config["max_position_embeddings"] == 512 and config["hidden_size"] == 384
    assert config["pooling"] == "cls" and "auto_map" not in config
    names = set(load_file(saved_classifier_dir / "model.safetensors"))
    assert {"bert.encoder.layer.5.attention.self.query.weight", "bert.pooler.dense.weight",
            "classifier.weight", "classifier.bias"} <= names
    assert not (saved_classifier_dir / MEAN_POOLING_CODE.name).exists()
    assert hf_tokenizer.model_max_length == FINETUNE_MAX_LEN and hf_tokenizer.do_lower_case
    assert sorted(p.name for p in saved_classifier_dir.parent.iterdir()) == ["model"]  # no temporary leftovers


def test_a_mean_model_dir_names_its_transformers_class_and_carries_its_code(saved_mean_classifier_dir):
    config = json.loads((saved_mean_classifier_dir / "config.json").read_text())
    assert config["pooling"] == "mean" and config["model_type"] == "bert_mean_pooling"
    assert config["architectures"] == ["BertMeanPoolingForSequenceClassification"]
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_bert_mean_pooling.BertMeanPoolingForSequenceClassification")
    code = saved_mean_classifier_dir / "modeling_bert_mean_pooling.py"
    assert code.read_bytes() == MEAN_POOLING_CODE.read_bytes()
    names = set(load_file(saved_mean_classifier_dir / "model.safetensors"))
    assert "classifier.weight" in names and not any(".pooler." in name for name in names)


def test_a_dir_without_pooling_loads_as_cls_and_an_unknown_pooling_is_refused(saved_classifier_dir, tmp_path):
    old = shutil.copytree(saved_classifier_dir, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    del config["pooling"]  # as saved before pooling was a choice
    (old / "config.json").write_text(json.dumps(config))
    loaded, reference = load_model(old), load_model(saved_classifier_dir)
    assert loaded.model.pooling == "cls"
    assert torch.equal(logits_of(loaded.model, loaded.tokenizer), logits_of(reference.model, reference.tokenizer))
    (old / "config.json").write_text(json.dumps(config | {"pooling": "max"}))
    with pytest.raises(CheckpointError, match="pooling must be one of cls, mean, got 'max'"):
        load_model(old)


def test_a_mean_model_takes_a_base_checkpoints_encoder_and_leaves_its_pooler(minilm_dir, minilm_cfg):
    model = Classifier(minilm_cfg, 2, "mean")
    load_pretrained_encoder(model, minilm_dir)  # the checkpoint's pooler.dense.* is not unexpected
    encoder = load_file(minilm_dir / "model.safetensors")
    assert torch.equal(model.blocks[0].ff_in.weight, encoder["encoder.layer.0.intermediate.dense.weight"])
    assert model.pooler is None


def test_transformers_gives_identical_probabilities(saved_classifier_dir, hf_logits):
    loaded = load_model(saved_classifier_dir)
    probs = logits_of(loaded.model, loaded.tokenizer).softmax(-1)
    assert (probs - 1 / 3).abs().max() > 0.1  # the random head is far from uniform: the check has teeth
    assert torch.allclose(probs, hf_logits.softmax(-1), atol=1e-5)


def test_pretrained_encoder_keeps_the_checkpoints_pooler_and_a_fresh_head(minilm_dir, minilm_cfg):
    model = Classifier(minilm_cfg, 2)
    head_before = model.head.weight.clone()
    load_pretrained_encoder(model, minilm_dir)
    pooler = load_file(minilm_dir / "model.safetensors")["pooler.dense.weight"]
    assert torch.equal(model.pooler.weight, pooler)
    assert torch.equal(model.head.weight, head_before)


@pytest.fixture
def tiny_dir(tmp_path, tiny_base_model):
    """An editable copy of the tiny random HF BERT (no "bert." prefix, with pooler)."""
    return shutil.copytree(tiny_base_model, tmp_path / "tiny")


def tiny_model(model_dir, n_labels=2):
    return Classifier(ModelConfig.from_json(model_dir / "config.json"), n_labels)


def edit_weights(model_dir, edit):
    tensors = load_file(model_dir / "model.safetensors")
    edit(tensors)
    save_file(tensors, model_dir / "model.safetensors")


def test_wrong_shape_names_the_tensor(tiny_dir):
    edit_weights(tiny_dir, lambda t: t.update({"encoder.layer.1.attention.self.key.weight": torch.zeros(32, 16)}))
    model = tiny_model(tiny_dir)
    before = {name: p.clone() for name, p in model.named_parameters()}
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.attention\.self\.key\.weight has shape "
                                              r"\(32, 16\), expected \(32, 32\)"):
        load_pretrained_encoder(model, tiny_dir)
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())  # nothing half-loaded


def test_missing_and_unexpected_tensors_are_named(tiny_dir):
    edit_weights(tiny_dir, lambda t: t.pop("encoder.layer.0.output.dense.bias"))
    with pytest.raises(CheckpointError, match=r"missing tensor\(s\) encoder\.layer\.0\.output\.dense\.bias"):
        load_pretrained_encoder(tiny_model(tiny_dir), tiny_dir)
    edit_weights(tiny_dir, lambda t: t.update({"encoder.layer.0.output.dense.bias": torch.zeros(32),
                                               "encoder.layer.7.extra.weight": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) encoder\.layer\.7\.extra\.weight"):
        load_pretrained_encoder(tiny_model(tiny_dir), tiny_dir)


def test_too_few_layers_in_the_checkpoint_is_named(tiny_dir):
    cfg = ModelConfig.from_json(tiny_dir / "config.json")
    cfg.n_layers = 3
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.2\."):
        load_pretrained_encoder(Classifier(cfg, 2), tiny_dir)


def test_pytorch_bin_with_bert_prefix_and_no_pooler(tiny_dir):
    tensors = load_file(tiny_dir / "model.safetensors")
    (tiny_dir / "model.safetensors").unlink()
    torch.save({f"bert.{k}": v for k, v in tensors.items() if not k.startswith("pooler.")},
               tiny_dir / "pytorch_model.bin")
    model = tiny_model(tiny_dir)
    fresh_pooler = model.pooler.weight.clone()
    load_pretrained_encoder(model, tiny_dir)
    assert torch.equal(model.embed.tok_embed.weight, tensors["embeddings.word_embeddings.weight"])
    assert torch.equal(model.pooler.weight, fresh_pooler)


def test_pickled_objects_in_pytorch_bin_are_refused(tiny_dir):
    (tiny_dir / "model.safetensors").unlink()
    torch.save({"weights": ModelConfig.from_json(tiny_dir / "config.json")}, tiny_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="cannot read the weights"):
        load_pretrained_encoder(tiny_model(tiny_dir), tiny_dir)


def test_unreadable_or_absent_weights(tiny_dir):
    (tiny_dir / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read the weights"):
        load_pretrained_encoder(tiny_model(tiny_dir), tiny_dir)
    (tiny_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        load_pretrained_encoder(tiny_model(tiny_dir), tiny_dir)


def test_load_model_needs_a_classifier_dir(tiny_dir, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="id2label"):
        load_model(tiny_dir)  # an encoder checkpoint, not a classifier


def test_save_model_overwrites_and_rejects_bad_labels(tmp_path, tiny_dir):
    model, tokenizer = tiny_model(tiny_dir), Tokenizer.from_dir(tiny_dir)
    cfg = ModelConfig.from_json(tiny_dir / "config.json")
    out = tmp_path / "out"
    save_model(out, model, tokenizer, cfg, ["a", "b"])
    with torch.no_grad():
        model.head.bias.fill_(3.0)
    save_model(out, model, tokenizer, cfg, ["yes", "no"])
    loaded = load_model(out)
    assert loaded.labels == ["yes", "no"] and torch.equal(loaded.model.head.bias, model.head.bias)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny"]
    with pytest.raises(ValueError, match="distinct"):
        save_model(out, model, tokenizer, cfg, ["same", "same"])
