"""TrainConfig is the one definition of the hyperparameters: every field reaches the API's schema, the CLI's flags and
the README's table, so adding a hyperparameter is a one-field change. The seed's names (lr, warmup, n_epochs) stay
readable in a config file and as CLI flags, never in the API."""
import json
import re

import pytest

from app.schemas import SERVICE_DEFAULTS, Hyperparameters
from model_core.cli import build_parser, train_config
from model_core.config import TrainConfig
from testkit import REPO
from tests.factories import TINY_HYPERPARAMETERS

FIELDS = TrainConfig.model_fields
README_TABLE_HEADER = "| hyperparameter | default | range and meaning |"


def readme_table() -> dict[str, str]:
    """The README's hyperparameter table: name -> default cell."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(README_TABLE_HEADER) + 2  # past the header and the |---| line
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        name, default, _meaning = (cell.strip() for cell in line.strip("|").split("|", 2))
        rows[name.strip("`")] = default
    return rows


def test_every_field_is_in_the_openapi_schema(client):
    properties = client.get("/openapi.json").json()["components"]["schemas"]["Hyperparameters"]["properties"]
    assert list(properties) == list(FIELDS)
    for name, field in FIELDS.items():
        assert properties[name]["description"] == field.description
        assert properties[name]["default"] == SERVICE_DEFAULTS.get(name, field.default)


def test_every_field_is_a_train_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag: argparse would wrap at hyphens
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["train", "--help"])
    assert exited.value.code == 0
    entries = re.split(r"\n  (?=-)", capsys.readouterr().out)  # an option's entry: its flags, then its help
    flags = {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in entries}
    for name, field in FIELDS.items():
        entry = flags["--" + name.replace("_", "-")]
        assert f"{field.description} (default: {json.dumps(field.default)})" in entry


def test_every_field_is_in_the_readme_table():
    rows = readme_table()
    assert list(rows) == list(FIELDS)
    for name, field in FIELDS.items():
        defaults = [json.loads(value) for value in re.findall(r"`([^`]*)`", rows[name])]
        expected = [field.default] + ([SERVICE_DEFAULTS[name]] if name in SERVICE_DEFAULTS else [])
        assert defaults == expected, f"README default of {name}: {rows[name]}"


def test_seed_style_config_file_is_read_with_our_names(tmp_path):
    path = tmp_path / "train.json"  # pytorchic-bert's train config
    path.write_text(json.dumps({"seed": 3431, "batch_size": 32, "lr": 2e-5, "n_epochs": 3, "warmup": 0.1,
                                "save_steps": 100, "total_steps": 100000}))
    cfg = TrainConfig.from_json(path)
    assert (cfg.seed, cfg.batch_size, cfg.learning_rate, cfg.epochs, cfg.warmup_ratio) == (3431, 32, 2e-5, 3, 0.1)
    assert (cfg.save_steps, cfg.total_steps) == (100, 100000)


def test_seed_flags_are_aliases_and_flags_override_the_config_file(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"lr": 2e-5, "warmup": 0.2, "epochs": 7}))
    args = build_parser().parse_args(["train", "--train", "t.tsv", "--out", "o", "--config", str(path),
                                      "--lr", "3e-3", "--max-len", "16"])
    assert train_config(args) == TrainConfig(learning_rate=3e-3, warmup_ratio=0.2, epochs=7, max_len=16)
    args = build_parser().parse_args(["train", "--train", "t.tsv", "--out", "o", "--warmup", "0",
                                      "--n-epochs", "2", "--save-steps", "5"])
    assert train_config(args) == TrainConfig(warmup_ratio=0.0, epochs=2, save_steps=5)


@pytest.mark.parametrize("seed_name", ["lr", "warmup", "n_epochs"])
def test_the_api_refuses_the_seed_names(client, train_tsv, tiny_base_model, seed_name):
    dataset_id = client.post("/datasets", files={"file": ("train.tsv", train_tsv.read_bytes())}).json()["id"]
    body = {"dataset_id": dataset_id, "base_model": str(tiny_base_model),
            "hyperparameters": {**TINY_HYPERPARAMETERS, seed_name: 1e-4}}
    response = client.post("/jobs", json=body)
    assert response.status_code == 422 and seed_name in response.text
    assert client.get("/jobs").json()["total"] == 0


def test_stored_hyperparameters_of_older_jobs_still_load():
    """Rows written before the extra fields (and before save_steps) were part of the API."""
    for row in [{"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.1, "weight_decay": 0.01,
                 "max_len": 32, "seed": 42, "save_steps": 500},
                {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.1, "weight_decay": 0.01,
                 "max_len": 32, "seed": 42}]:
        cfg = TrainConfig.model_validate(row)  # what the worker trains with
        assert (cfg.learning_rate, cfg.save_steps, cfg.grad_clip) == (1e-3, row.get("save_steps"), 1.0)
        assert Hyperparameters(**row).model_dump().keys() == FIELDS.keys()  # what the job object shows (JobOut.of)
