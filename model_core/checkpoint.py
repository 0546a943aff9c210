"""Read and write Hugging Face BERT checkpoint directories.

Our parameter names (model_core.model) map to Hugging Face names by `hf_names`; the fused
attention.qkv is HF's query, key and value stacked along the output dimension. Loading asserts
that every expected tensor is present with the right shape and names the one that is not.
config.json's "pooling" records the classifier's pooling (absent: cls). A cls model is a plain
BertForSequenceClassification directory; a mean model carries modeling_bert_mean_pooling.py, the
transformers class its config.json names (see save_model).

A multi-label classifier's config.json says `"problem_type": "multi_label_classification"` (transformers then
applies BCEWithLogitsLoss), and thresholds.json beside it holds each label's threshold ({label: threshold}).
A single-label classifier's calibration.json holds its temperature ({"temperature": T}): its calibrated
probabilities are softmax(logits / T). Without the file T is 1.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model_core.config import (
    DEFAULT_THRESHOLD,
    MEAN_POOLING_MODEL_TYPE,
    MULTI_LABEL,
    SINGLE_LABEL,
    ConfigError,
    ModelConfig,
    Pooling,
    ProblemType,
)
from model_core.model import Classifier
from model_core.tokenization import Tokenizer, VocabError

ENCODER_PREFIX = "bert."  # HF's BertForSequenceClassification keeps the encoder under "bert."
IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")  # buffers, not weights
HEAD_PREFIXES = ("classifier.", "cls.")  # task heads a base checkpoint may carry; a new head is trained
POOLER_PREFIX = "pooler."  # a base checkpoint's [CLS] pooler, unused by a mean-pooling classifier
# transformers' code of a mean-pooled model, copied into its directory; config.json's auto_map names its classes
MEAN_POOLING_CODE = Path(__file__).with_name("modeling_bert_mean_pooling.py")
MEAN_POOLING_HF_CONFIG = {
    "architectures": ["BertMeanPoolingForSequenceClassification"],
    "auto_map": {"AutoConfig": "modeling_bert_mean_pooling.BertMeanPoolingConfig",
                 "AutoModelForSequenceClassification":
                     "modeling_bert_mean_pooling.BertMeanPoolingForSequenceClassification"},
    "model_type": MEAN_POOLING_MODEL_TYPE,
}
THRESHOLDS_FILE = "thresholds.json"  # a multi-label model's {label: threshold}
CALIBRATION_FILE = "calibration.json"  # a single-label model's {"temperature": T}


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded into the model; the message names the tensor."""


@dataclass
class LoadedModel:
    model: Classifier  # in eval mode
    tokenizer: Tokenizer
    cfg: ModelConfig
    labels: list[str]  # label names in class-id order
    max_len: int  # tokens per input the model was fine-tuned with
    problem_type: ProblemType = SINGLE_LABEL
    thresholds: list[float] | None = None  # multi-label: each label's threshold, in class-id order
    temperature: float = 1.0  # single-label: probabilities are softmax(logits / temperature)


def hf_names(model: Classifier) -> dict[str, list[str]]:
    """Our parameter name -> the HF names (without the "bert." prefix) whose tensors it holds,
    stacked along dim 0 when several."""
    names = {"embed.tok_embed.weight": ["embeddings.word_embeddings.weight"],
             "embed.pos_embed.weight": ["embeddings.position_embeddings.weight"],
             "embed.seg_embed.weight": ["embeddings.token_type_embeddings.weight"]}
    modules = {"embed.norm": "embeddings.LayerNorm"}
    if model.pooler is not None:
        modules["pooler"] = "pooler.dense"
    for i in range(len(model.blocks)):
        ours, hf = f"blocks.{i}.", f"encoder.layer.{i}."
        modules |= {ours + "attn.proj": hf + "attention.output.dense",
                    ours + "attn_norm": hf + "attention.output.LayerNorm",
                    ours + "ff_in": hf + "intermediate.dense",
                    ours + "ff_out": hf + "output.dense",
                    ours + "ff_norm": hf + "output.LayerNorm"}
        for kind in ("weight", "bias"):
            names[f"{ours}attn.qkv.{kind}"] = [f"{hf}attention.self.{p}.{kind}" for p in ("query", "key", "value")]
    modules["head"] = "classifier"
    for ours, hf in modules.items():
        for kind in ("weight", "bias"):
            names[f"{ours}.{kind}"] = [f"{hf}.{kind}"]
    return names


def read_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of model.safetensors (or pytorch_model.bin, loaded with weights_only=True), HF key names
    normalised: no "bert." prefix, LayerNorm gamma/beta renamed weight/bias, buffers dropped."""
    model_dir = Path(model_dir)
    safetensors_path, bin_path = model_dir / "model.safetensors", model_dir / "pytorch_model.bin"
    try:
        if safetensors_path.is_file():
            raw = load_file(safetensors_path)
        elif bin_path.is_file():
            raw = torch.load(bin_path, map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(f"{model_dir} has no model.safetensors or pytorch_model.bin")
    except (SafetensorError, OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:  # not weights
        raise CheckpointError(f"cannot read the weights in {model_dir}: {e}") from None
    if not isinstance(raw, dict) or not all(isinstance(t, torch.Tensor) for t in raw.values()):
        raise CheckpointError(f"the weights file in {model_dir} is not a flat name -> tensor mapping")
    state = {}
    for key, tensor in raw.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        key = key.removeprefix(ENCODER_PREFIX)
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        state[key] = tensor
    return state


def load_state(model: Classifier, state: dict[str, torch.Tensor], where: str, *, with_head: bool) -> None:
    """Copy HF-named tensors into the model. Encoder tensors are required; the pooler is optional
    (kept freshly initialised when absent) unless with_head; the head (classifier.*) is loaded only
    with_head. Raises CheckpointError naming missing, misshaped or unexpected tensors."""
    params = dict(model.named_parameters())
    mapping = hf_names(model)
    to_load = list(mapping)
    if not with_head:
        to_load = [ours for ours in to_load if not ours.startswith("head.")]
        if not any(key.startswith(POOLER_PREFIX) for key in state):  # keep the fresh pooler
            to_load = [ours for ours in to_load if not ours.startswith("pooler.")]
    missing = [hf for ours in to_load for hf in mapping[ours] if hf not in state]
    if missing:
        raise CheckpointError(f"{where}: missing tensor(s) {_first_few(missing)}")
    known = {hf for hf_list in mapping.values() for hf in hf_list}
    ignored = HEAD_PREFIXES + ((POOLER_PREFIX,) if model.pooler is None else ())
    unexpected = sorted(k for k in state if k not in known and not k.startswith(ignored))
    if unexpected:
        raise CheckpointError(f"{where}: unexpected tensor(s) {_first_few(unexpected)} "
                              "(not a BERT checkpoint of this layout?)")
    for ours in to_load:  # check every shape before changing any parameter
        hf_list = mapping[ours]
        shape = params[ours].shape
        part_shape = (shape[0] // len(hf_list), *shape[1:])  # qkv: three equal parts along dim 0
        for hf in hf_list:
            if tuple(state[hf].shape) != part_shape:
                raise CheckpointError(f"{where}: tensor {hf} has shape {tuple(state[hf].shape)}, "
                                      f"expected {part_shape}")
    with torch.no_grad():
        for ours in to_load:
            params[ours].copy_(torch.cat([state[hf] for hf in mapping[ours]]))


def _first_few(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def load_pretrained_encoder(model: Classifier, model_dir: str | Path) -> None:
    """Load a HF BERT checkpoint's encoder (and pooler when present and the model pools [CLS]) into the
    model; the classification head stays as initialised."""
    load_state(model, read_state_dict(model_dir), str(model_dir), with_head=False)


def save_model(out_dir: str | Path, model: Classifier, tokenizer: Tokenizer, cfg: ModelConfig,
               labels: list[str], max_len: int | None = None, problem_type: ProblemType = SINGLE_LABEL,
               thresholds: dict[str, float] | None = None) -> Path:
    """Write a directory that transformers loads unchanged: BertTokenizerFast, and for a cls model
    BertForSequenceClassification; a mean model's config.json names the class of modeling_bert_mean_pooling.py,
    copied beside it, which AutoModelForSequenceClassification loads with trust_remote_code=True. max_len (the
    fine-tune max_len) becomes the tokenizer's model_max_length. A multi-label model's thresholds.json gets
    `thresholds` (DEFAULT_THRESHOLD for a label they lack). Written to a temporary sibling and renamed into
    place, so out_dir is never half-written."""
    out_dir = Path(out_dir)
    if len(labels) != model.n_labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be {model.n_labels} distinct names, got {labels!r}")
    if thresholds is not None and problem_type != MULTI_LABEL:
        raise ValueError("thresholds belong to a multi-label model")
    mapping = hf_names(model)
    tensors = {}
    for ours, param in model.state_dict().items():
        hf_list = mapping[ours]
        prefix = "" if ours.startswith("head.") else ENCODER_PREFIX
        for hf, part in zip(hf_list, param.detach().float().cpu().chunk(len(hf_list)), strict=True):
            tensors[prefix + hf] = part.contiguous()
    config = {"architectures": ["BertForSequenceClassification"], **cfg.to_hf_dict(),
              "id2label": {str(i): label for i, label in enumerate(labels)},
              "label2id": {label: i for i, label in enumerate(labels)},
              "problem_type": problem_type, "classifier_dropout": None,
              "torch_dtype": "float32", "pooling": model.pooling}
    if model.pooling == "mean":
        config |= MEAN_POOLING_HF_CONFIG

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if problem_type == MULTI_LABEL:
            save_thresholds(tmp, labels, thresholds)
        tokenizer.save(tmp, max_len=max_len)
        if model.pooling == "mean":
            shutil.copyfile(MEAN_POOLING_CODE, tmp / MEAN_POOLING_CODE.name)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if out_dir.exists():
            old = out_dir.with_name(tmp.name + ".old")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def save_thresholds(model_dir: Path, labels: list[str], thresholds: dict[str, float] | None) -> None:
    """Writes a multi-label model's thresholds.json, {label: threshold} in label order (DEFAULT_THRESHOLD for a
    label `thresholds` lacks), through a temporary file and a rename."""
    chosen = {label: float((thresholds or {}).get(label, DEFAULT_THRESHOLD)) for label in labels}
    tmp = model_dir / f".{THRESHOLDS_FILE}.tmp"
    tmp.write_text(json.dumps(chosen, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(model_dir / THRESHOLDS_FILE)


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a fine-tuned classifier directory (ours, or any HF BertForSequenceClassification dir)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"model directory not found: {model_dir}")
    try:
        cfg = ModelConfig.from_json(model_dir / "config.json")
        tokenizer = Tokenizer.from_dir(model_dir)
        hf_config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (ConfigError, VocabError) as e:
        raise CheckpointError(f"{model_dir}: {e}") from e
    labels = read_labels(hf_config, str(model_dir))
    pooling = read_pooling(hf_config, str(model_dir))
    problem_type = read_problem_type(hf_config, str(model_dir))
    if len(tokenizer.vocab) > cfg.vocab_size:
        raise CheckpointError(f"{model_dir}: vocab.txt has {len(tokenizer.vocab)} tokens but the model "
                              f"only {cfg.vocab_size} embeddings")
    model = Classifier(cfg, len(labels), pooling)
    load_state(model, read_state_dict(model_dir), str(model_dir), with_head=True)
    model.to(device).eval()
    max_len = tokenizer.model_max_length
    if max_len is None or not 3 <= max_len <= cfg.max_len:
        max_len = cfg.max_len
    thresholds = read_thresholds(model_dir, labels) if problem_type == MULTI_LABEL else None
    temperature = read_temperature(model_dir) if problem_type == SINGLE_LABEL else 1.0
    return LoadedModel(model=model, tokenizer=tokenizer, cfg=cfg, labels=labels, max_len=max_len,
                       problem_type=problem_type, thresholds=thresholds, temperature=temperature)


def read_problem_type(hf_config: dict, where: str) -> ProblemType:
    """config.json's problem_type; single-label when it names none (transformers' default for several labels)."""
    problem_type = hf_config.get("problem_type") or SINGLE_LABEL
    if problem_type not in (SINGLE_LABEL, MULTI_LABEL):
        raise CheckpointError(f"{where}: config.json problem_type {problem_type!r} is not supported (expected "
                              f"{SINGLE_LABEL!r} or {MULTI_LABEL!r})")
    return problem_type


def read_thresholds(model_dir: Path, labels: list[str]) -> list[float]:
    """Each label's threshold from thresholds.json, in class-id order; DEFAULT_THRESHOLD for all without the file
    (a multi-label model from elsewhere)."""
    path = model_dir / THRESHOLDS_FILE
    if not path.is_file():
        return [DEFAULT_THRESHOLD] * len(labels)
    try:
        thresholds = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    valid = isinstance(thresholds, dict) and all(
        isinstance(thresholds.get(label), int | float) and 0 <= thresholds[label] <= 1 for label in labels)
    if not valid:
        raise CheckpointError(f"{path}: expected a threshold in [0, 1] for each label of config.json")
    return [float(thresholds[label]) for label in labels]


def save_temperature(model_dir: Path, temperature: float) -> None:
    """Writes a single-label model's calibration.json through a temporary file and a rename."""
    tmp = model_dir / f".{CALIBRATION_FILE}.tmp"
    tmp.write_text(json.dumps({"temperature": float(temperature)}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(model_dir / CALIBRATION_FILE)


def read_temperature(model_dir: Path) -> float:
    """calibration.json's temperature (> 0); 1 without the file (a model from elsewhere, or saved before)."""
    path = model_dir / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    try:
        temperature = json.loads(path.read_text(encoding="utf-8")).get("temperature")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not temperature > 0:
        raise CheckpointError(f"{path}: expected {{\"temperature\": a number > 0}}")
    return float(temperature)


def read_labels(hf_config: dict, where: str) -> list[str]:
    """Label names in class-id order from config.json's id2label."""
    id2label = hf_config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise CheckpointError(f"{where}: config.json has no id2label (not a sequence classifier?)")
    try:
        by_id = {int(i): str(label) for i, label in id2label.items()}
    except ValueError:
        raise CheckpointError(f"{where}: config.json id2label keys must be integers") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise CheckpointError(f"{where}: config.json id2label ids must be 0..{len(by_id) - 1}")
    return [by_id[i] for i in range(len(by_id))]


def read_pooling(hf_config: dict, where: str) -> Pooling:
    """config.json's "pooling"; a directory without one (saved before pooling was a choice, or by transformers)
    pools [CLS]."""
    pooling = hf_config.get("pooling", "cls")
    if pooling not in get_args(Pooling):
        raise CheckpointError(f"{where}: config.json pooling must be one of {', '.join(get_args(Pooling))}, "
                              f"got {pooling!r}")
    return pooling
