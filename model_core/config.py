"""Model and training configurations.

ModelConfig reads both the seed's JSON shape (pytorchic-bert: dim, dim_ff, n_layers, ...)
and a Hugging Face BERT config.json (hidden_size, intermediate_size, ...).
TrainConfig is a pydantic model: an out-of-range value raises a ValidationError naming the field. It is the
one definition of the hyperparameters: the API's request model and the CLI's flags are derived from it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

Device = Literal["auto", "cpu", "cuda"]  # auto: cuda when present
QuantizeMode = Literal["int8"]  # dynamic int8 quantization of the Linear layers at inference (CPU)
Pooling = Literal["cls", "mean"]  # how a classifier turns an input's token states into one vector
PoolingSetting = Literal["auto", "cls", "mean"]  # the hyperparameter: auto = the base model's own pooling, else cls
# config.json's model_type of a mean-pooled classifier saved by model_core.checkpoint (transformers' BERT otherwise)
MEAN_POOLING_MODEL_TYPE = "bert_mean_pooling"
# what a classifier predicts, in transformers' config.json names: one label per input (softmax), or any number of
# labels per input (a sigmoid per label, each with its own threshold)
ProblemType = Literal["single_label_classification", "multi_label_classification"]
SINGLE_LABEL: ProblemType = "single_label_classification"
MULTI_LABEL: ProblemType = "multi_label_classification"
DEFAULT_THRESHOLD = 0.5  # a multi-label threshold where none was tuned
AUTO = "auto"  # a hyperparameter chosen from the training data by model_core.auto
ClassWeighting = Literal["auto", "none", "balanced"]

# Hugging Face config.json key -> our field name
HF_TO_SEED = {
    "hidden_size": "dim",
    "intermediate_size": "dim_ff",
    "num_hidden_layers": "n_layers",
    "num_attention_heads": "n_heads",
    "attention_probs_dropout_prob": "p_drop_attn",
    "hidden_dropout_prob": "p_drop_hidden",
    "max_position_embeddings": "max_len",
    "type_vocab_size": "n_segments",
    "vocab_size": "vocab_size",
    "layer_norm_eps": "layer_norm_eps",
}
# the seed's (pytorchic-bert's) name in a training config file -> our TrainConfig field; the CLI takes them as flags
SEED_TRAIN_NAMES = {"lr": "learning_rate", "warmup": "warmup_ratio", "n_epochs": "epochs"}


class ConfigError(ValueError):
    """A config that cannot be read, is missing fields or describes an impossible model."""


def read_json(path: str | Path, what: str) -> object:
    """The JSON value in the file; ConfigError naming `what` and the file when it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from e


def read_json_object(path: str | Path, what: str) -> dict:
    """The JSON object in the file; ConfigError naming `what` and the file when it cannot be read or is no object."""
    raw = read_json(path, what)
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path}: expected a JSON object")
    return raw


@dataclass
class ModelConfig:
    dim: int = 768  # hidden size
    dim_ff: int = 3072  # feed-forward inner size
    n_layers: int = 12
    n_heads: int = 12
    p_drop_attn: float = 0.1
    p_drop_hidden: float = 0.1
    max_len: int = 512  # number of position embeddings
    n_segments: int = 2  # number of segment (token type) embeddings
    vocab_size: int = 30522
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for name in ("dim", "dim_ff", "n_layers", "n_heads", "max_len", "n_segments", "vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model config: {name} must be a positive integer, got {value!r}")
        for name in ("p_drop_attn", "p_drop_hidden"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"model config: {name} must be in [0, 1), got {value!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ConfigError(f"model config: layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.dim % self.n_heads != 0:
            raise ConfigError(
                f"model config: dim ({self.dim}) must be divisible by n_heads ({self.n_heads})"
            )

    @classmethod
    def from_dict(cls, raw: dict) -> ModelConfig:
        """Build from the seed's shape or a Hugging Face config.json dict (detected by its keys)."""
        if "hidden_size" in raw:  # Hugging Face
            if raw.get("model_type", "bert") not in ("bert", MEAN_POOLING_MODEL_TYPE):
                raise ConfigError(f"model config: model_type {raw['model_type']!r} is not supported (bert only)")
            if raw.get("hidden_act", "gelu") != "gelu":
                raise ConfigError(f"model config: hidden_act {raw['hidden_act']!r} is not supported (gelu only)")
            if raw.get("position_embedding_type", "absolute") != "absolute":
                raise ConfigError("model config: only absolute position embeddings are supported")
            values = {ours: raw[hf] for hf, ours in HF_TO_SEED.items() if hf in raw}
        else:
            names = {f.name for f in fields(cls)}
            values = {k: v for k, v in raw.items() if k in names}
        required = {f.name for f in fields(cls)} - {"layer_norm_eps"}
        missing = sorted(required - values.keys())
        if missing:
            raise ConfigError(f"model config: missing field(s) {', '.join(missing)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(read_json_object(path, "model config"))

    def to_dict(self) -> dict:
        """The seed's JSON shape."""
        return asdict(self)

    def to_hf_dict(self) -> dict:
        """The Hugging Face BertConfig fields (without labels/architectures)."""
        ours = asdict(self)
        return {
            "model_type": "bert",
            **{hf: ours[name] for hf, name in HF_TO_SEED.items()},
            "hidden_act": "gelu",
            "initializer_range": 0.02,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
        }


def auto_or(values: Any, allowed: str) -> Any:
    """The type of a hyperparameter that is "auto" or one of `values` (a type with its constraints); any other
    input is one error naming what is allowed ("Input should be 'auto' or an integer 1..100") rather than one per
    member of the union."""

    def one_error(value: Any, handler):
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("auto_or_value", "Input should be {allowed}",
                                      {"allowed": allowed}) from None

    return Annotated[values | Literal["auto"], WrapValidator(one_error)]


class TrainConfig(BaseModel):
    """Fine-tuning hyperparameters: the one definition the API, the CLI and the trainer share.

    The field names are the API's; a description is the API's and the CLI's documentation of the field.
    Unknown names are refused (a typo must not silently train with the default). A field that is "auto" is
    chosen from the training data when a run starts (model_core.auto.resolve); a given value is kept as given.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: auto_or(Annotated[int, Field(ge=1, le=100)], "'auto' or an integer 1..100") = Field(
        AUTO, description='Passes over the training set, 1..100. "auto": enough steps for the data size, with '
        "early stopping.")
    batch_size: auto_or(Annotated[int, Field(ge=1, le=1024)], "'auto' or an integer 1..1024") = Field(
        AUTO, description='Examples per step, 1..1024. "auto": by the data size.')
    learning_rate: auto_or(Annotated[float, Field(gt=0, le=1)], "'auto' or a number in (0, 1]") = Field(
        AUTO, description='Peak AdamW learning rate, (0, 1]. "auto": by the data size.')
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of the steps with linear warm-up, [0, 1).")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW weight decay (not on biases and LayerNorm), "
                                "[0, 1].")
    max_len: auto_or(Annotated[int, Field(ge=8, le=512)], "'auto' or an integer 8..512") = Field(
        AUTO, description="Tokens per example, [CLS] and [SEP] included (longer is truncated), 8..512 and at most "
        'the base model\'s position limit. "auto": covers 99% of the training texts.')
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed of initialisation, data order and the held-out "
                      "split, 0..4294967295.")
    save_steps: int | None = Field(None, ge=1, description="Checkpoint every this many steps, >= 1: where an "
                                   "interrupted run resumes. null: only at the end.")
    total_steps: int | None = Field(None, ge=1, description="Stop after this many steps, >= 1 (the learning-rate "
                                    "schedule spans them). null: epochs times the steps per epoch.")
    grad_clip: float = Field(1.0, gt=0, description="Largest global gradient norm (clipped above), > 0.")
    eval_steps: auto_or(Annotated[int, Field(ge=1)] | None, "'auto', null or an integer >= 1") = Field(
        AUTO, description='Also evaluate every this many steps, >= 1. null: after each epoch (and the last step) '
        'only. "auto": often enough for about 10 evaluations per run.')
    early_stopping_patience: auto_or(Annotated[int, Field(ge=1)] | None, "'auto', null or an integer >= 1") = Field(
        AUTO, description="Stop after this many evaluations in a row without a better macro-F1, >= 1. null: never "
        'stop early. "auto": early stopping when epochs is "auto" and there is a held-out set.')
    pooling: PoolingSetting = Field("auto", description="What the classifier reads: cls = the [CLS] token through "
                                    "BERT's tanh pooler; mean = the mean of the last layer over the real tokens; "
                                    "auto = the base model's own pooling where it declares one (a "
                                    "sentence-transformers Pooling module, or a model trained here), else cls.")
    class_weighting: ClassWeighting = Field(
        AUTO, description='Cross-entropy class weights: "none"; "balanced" (inverse class frequency, mean weight '
        '1); "auto": balanced when the largest class has over 3x the rows of the smallest.')
    dedupe: bool = Field(False, description="Before the held-out split, drop every row whose text (case and "
                         "whitespace aside) an earlier row has, and every row of a text that has different labels.")

    def auto_fields(self) -> list[str]:
        """The names of the fields that are "auto"."""
        return [name for name in type(self).model_fields if getattr(self, name) == AUTO]

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """A training config file: our field names, or the seed project's (`lr`, `warmup`, `n_epochs`)."""
        return cls.model_validate(with_our_names(read_json_object(path, "training config"), f"training config {path}"))


def with_our_names(raw: dict, source: str) -> dict:
    """`raw` with the seed project's training names (SEED_TRAIN_NAMES) renamed to ours."""
    both = sorted(seed for seed, ours in SEED_TRAIN_NAMES.items() if seed in raw and ours in raw)
    if both:
        raise ConfigError(f"{source}: give either {both[0]!r} or {SEED_TRAIN_NAMES[both[0]]!r}, not both")
    return {SEED_TRAIN_NAMES.get(key, key): value for key, value in raw.items()}
