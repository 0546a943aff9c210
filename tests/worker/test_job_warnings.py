"""A job's data checks through PostgreSQL, Redis and a real `celery worker` process: with `dedupe` the worker trains
on the rows left once duplicate and conflicting texts are dropped, and the job object says what was dropped and how
many evaluation rows repeat a training text."""
from model_core.data import Example
from tests.factories import TINY_HYPERPARAMETERS, sentiment_examples, write_tsv
from tests.harness import wait_for_job


def upload(client, path) -> str:
    response = client.post("/datasets", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_dedupe_job_trains_without_repeated_rows_and_reports_the_overlap(production_client, tiny_base_model,
                                                                            tmp_path):
    unique = list({example.text: example for example in sentiment_examples(80, seed=5)}.values())[:40]
    assert {example.label for example in unique[:8]} == {"pos", "neg"}
    repeats = [*unique[:4], Example(unique[4].text.upper(), None, unique[4].label),
               Example(unique[5].text.replace(" ", "  "), None, unique[5].label)]
    conflict = [Example("the plot was fine and boring", None, label) for label in ("pos", "neg")]
    train = write_tsv(tmp_path / "train.tsv", unique + repeats + conflict)  # lines 2..41, 42..47, 48..49
    train_texts = {example.text for example in unique}
    fresh = [example for example in sentiment_examples(80, seed=6) if example.text not in train_texts][:7]
    shared = [unique[0], Example(unique[1].text.upper(), None, unique[1].label), unique[2]]
    dev = write_tsv(tmp_path / "dev.tsv", shared + fresh)  # its lines 2..4 are training texts

    response = production_client.post("/jobs", json={
        "dataset_id": upload(production_client, train), "eval_dataset_id": upload(production_client, dev),
        "base_model": str(tiny_base_model), "hyperparameters": {**TINY_HYPERPARAMETERS, "dedupe": True}})
    assert response.status_code == 202, response.text
    assert response.json()["warnings"] is None
    done = wait_for_job(production_client, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["total_steps"] == 2 * 5  # 2 epochs of the 40 kept rows in batches of 8, not 48 rows

    warnings = done["warnings"]
    assert [(warning["file"], warning["kind"]) for warning in warnings] == [
        ("train", "deduplicated"), ("eval", "small_classes"), ("eval", "train_eval_overlap")]
    dropped, _, overlap = warnings
    assert (dropped["count"], dropped["duplicates"], dropped["conflicting"]) == (8, 6, 2)
    assert dropped["lines"] == list(range(42, 50))
    assert (overlap["count"], overlap["eval_rows"], overlap["lines"], overlap["source"]) == (3, 10, [2, 3, 4],
                                                                                           "dataset")
    assert all(warning["message"] for warning in warnings)
