"""POST/GET/DELETE /datasets through the app: what is stored, and every way an upload is refused (nothing kept)."""
import hashlib
import random

import pytest

from tests.harness import stored_files

GOOD_TSV = b"label\tsentence\npos\ta fine film\nneg\ta dull film\npos\tgreat \"fun\"\n"


def upload(client, content: bytes, filename="train.tsv", **form):
    return client.post("/datasets", files={"file": (filename, content)}, data=form)


def test_upload_stores_the_raw_file_and_describes_it(client, sqlite_settings):
    response = upload(client, GOOD_TSV, name="films")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert {"id", "name", "n_rows", "labels", "label_column", "text_column", "text_pair_column", "sha256",
            "created_at"} <= set(dataset)
    assert dataset["name"] == "films" and dataset["n_rows"] == 3
    assert dataset["labels"] == {"pos": 2, "neg": 1}
    assert (dataset["label_column"], dataset["text_column"], dataset["text_pair_column"]) == ("label", "sentence", None)
    assert (dataset["label_delimiter"], dataset["multi_label"], dataset["allow_no_label"]) == (None, False, False)
    assert dataset["sha256"] == hashlib.sha256(GOOD_TSV).hexdigest()
    kept = stored_files(sqlite_settings)
    assert [p.parent.name for p in kept] == [dataset["id"]] and kept[0].read_bytes() == GOOD_TSV
    assert client.get(f"/datasets/{dataset['id']}").json() == dataset


def test_csv_with_quoting_pairs_crlf_bom_and_chosen_columns(client):
    content = ('\ufeffgold,premise,hypothesis\r\nyes,"a, b",c\r\nno,"say ""hi""",d\r\nyes,e,f\r\n').encode()
    response = upload(client, content, "pairs.csv", label_column="gold", text_column="premise",
                      text_pair_column="hypothesis")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["labels"] == {"yes": 2, "no": 1} and dataset["text_pair_column"] == "hypothesis"


MULTI_LABEL_TSV = b"label\ttext\njoy, surprise\twow, lovely\nanger\tugh\n\tok then\njoy|x\tyay\n"


def test_multi_label_upload_counts_each_label_and_shows_its_format(client):
    response = upload(client, MULTI_LABEL_TSV, label_delimiter=",", allow_no_label="true")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["labels"] == {"joy": 1, "surprise": 1, "anger": 1, "joy|x": 1} and dataset["n_rows"] == 4
    assert (dataset["label_delimiter"], dataset["multi_label"], dataset["allow_no_label"]) == (",", True, True)
    assert client.get(f"/datasets/{dataset['id']}").json() == dataset
    piped = upload(client, b"label\ttext\na|b\tx\nb\ty\n", label_delimiter="|", allow_no_label="False").json()
    assert piped["labels"] == {"a": 1, "b": 2} and piped["allow_no_label"] is False


# line 1 the header; line 3 repeats line 2 up to case, line 5 line 2 exactly; line 4 is short; "A fine film" is "pos"
# and "neg"; every label has fewer than 10 rows
WARNED_TSV = b"label\ttext\npos\tA fine film\nneg\ta FINE film\nneg\t:(\npos\tA fine film\n"


def test_upload_warns_of_duplicates_conflicts_small_classes_and_short_texts_without_refusing(client):
    response = upload(client, WARNED_TSV)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["n_rows"] == 4
    warnings = {warning["kind"]: warning for warning in dataset["warnings"]}
    assert list(warnings) == ["duplicate_texts", "near_duplicate_texts", "label_conflicts", "small_classes",
                              "short_texts"]
    assert (warnings["duplicate_texts"]["count"], warnings["duplicate_texts"]["lines"]) == (1, [5])
    assert (warnings["near_duplicate_texts"]["count"], warnings["near_duplicate_texts"]["lines"]) == (1, [3])
    conflict = warnings["label_conflicts"]
    assert (conflict["count"], conflict["rows"], conflict["lines"]) == (1, 3, [2, 3, 5])
    assert conflict["examples"] == [{"text": "A fine film", "lines": [2, 3, 5], "labels": ["pos", "neg"]}]
    assert warnings["small_classes"]["labels"] == {"pos": 2, "neg": 2}
    assert warnings["short_texts"]["lines"] == [4]
    assert all(warning["message"].endswith(".") for warning in warnings.values())
    assert client.get(f"/datasets/{dataset['id']}").json() == dataset
    assert client.get("/datasets").json()["items"] == [dataset]


def test_multi_label_upload_warns_of_texts_with_different_label_sets(client):
    content = b"label\ttext\na,b\tgood film\nb,a\tgood film\na\tGood film\nb\tbad film\n"
    warnings = upload(client, content, label_delimiter=",").json()["warnings"]
    conflicts = [warning for warning in warnings if warning["kind"] == "label_conflicts"]
    assert conflicts[0]["examples"] == [{"text": "good film", "lines": [2, 3, 4], "labels": [["a", "b"], ["a"]]}]


@pytest.mark.parametrize("form, reason", [
    ({"label_delimiter": ","}, "line 4: empty label"),  # the row without a label, not allowed
    ({"label_delimiter": ",", "allow_no_label": "yes"}, "allow_no_label must be true or false, got 'yes'"),
    ({"allow_no_label": "true"}, "needs a label delimiter"),
    ({"label_delimiter": "<=======>"}, "longer than 8 characters"),
], ids=["no label", "not a bool", "no delimiter", "long delimiter"])
def test_bad_multi_label_upload_is_422_saying_why(client, sqlite_settings, form, reason):
    response = upload(client, MULTI_LABEL_TSV, **form)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert client.get("/datasets").json()["total"] == 0 and stored_files(sqlite_settings) == []


BAD_UPLOADS = {
    "empty": (b"", "empty"),
    "header only": (b"label\ttext\n", "no data rows"),
    "missing columns": (b"category\tbody\na\tx\nb\ty\n", "column"),
    "wrong field count": (b"label\ttext\na\tx\nb\ty\textra\n", "line 3"),
    "empty text": (b"label\ttext\na\tx\nb\t   \n", "line 3"),
    "one class": (b"label\ttext\na\tx\na\ty\n", "label"),
    "invalid utf-8": (b"label\ttext\na\tx\nb\t\xff\xfe bad\n", "line 3"),
    "NUL byte": (b"label\ttext\na\tx\x00y\nb\ty\n", "line 2"),
    "random binary": (random.Random(0).randbytes(4096), "line"),  # seeded: some random bytes happen to decode
}


@pytest.mark.parametrize("content, reason", BAD_UPLOADS.values(), ids=BAD_UPLOADS.keys())
def test_bad_upload_is_422_naming_the_reason_and_leaves_nothing(client, sqlite_settings, content, reason):
    response = upload(client, content)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"].lower()
    assert client.get("/datasets").json()["total"] == 0
    assert stored_files(sqlite_settings) == []


def test_upload_over_max_upload_mb_is_413_and_leaves_nothing(tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from testkit.store import sqlite_settings_for

    settings = sqlite_settings_for(tmp_path, max_upload_mb=0.05)
    with TestClient(create_app(settings)) as small_client:
        big = b"label\ttext\n" + b"a\txxxxxxxxxxxxxxxxxxx\nb\tyyyyyyyyyyyyyyyyyyyy\n" * 2000
        response = upload(small_client, big)
        assert response.status_code == 413 and "MAX_UPLOAD_MB" in response.json()["detail"]
        assert small_client.get("/datasets").json()["total"] == 0
    assert stored_files(settings) == []


@pytest.mark.parametrize("request_kwargs, status", [
    ({"json": {"file": "x"}}, 415),
    ({"files": {"file": ("a.tsv", GOOD_TSV)}, "data": {"colour": "red"}}, 422),
    ({"files": {"data": ("a.tsv", GOOD_TSV)}}, 422),
    ({"data": {"name": "no file"}, "files": {"label_column": (None, "label")}}, 422),
], ids=["not multipart", "unknown field", "wrong file field", "no file"])
def test_malformed_upload_requests_are_4xx(client, sqlite_settings, request_kwargs, status):
    response = client.post("/datasets", **request_kwargs)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert stored_files(sqlite_settings) == []


def test_list_is_newest_first_and_paged(client):
    ids = [upload(client, GOOD_TSV, name=f"d{i}").json()["id"] for i in range(3)]
    page = client.get("/datasets", params={"limit": 2}).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 0)
    assert [d["id"] for d in page["items"]] == ids[::-1][:2]
    assert [d["id"] for d in client.get("/datasets", params={"offset": 2}).json()["items"]] == ids[:1]
    assert client.get("/datasets").json()["limit"] == 50
    assert client.get("/datasets", params={"limit": 201}).status_code == 422


def test_delete_removes_row_and_file_and_unknown_is_404(client, sqlite_settings):
    dataset_id = upload(client, GOOD_TSV).json()["id"]
    assert client.delete(f"/datasets/{dataset_id}").status_code == 204
    assert stored_files(sqlite_settings) == []
    for call in (client.get, client.delete):
        response = call(f"/datasets/{dataset_id}")
        assert response.status_code == 404 and dataset_id in response.json()["detail"]


def test_delete_of_a_dataset_a_queued_job_uses_is_409(client, tiny_base_model, train_tsv):
    dataset_id = upload(client, train_tsv.read_bytes()).json()["id"]
    job = client.post("/jobs", json={"dataset_id": dataset_id, "base_model": str(tiny_base_model),
                                     "hyperparameters": {"max_len": 32}})
    assert job.status_code == 202, job.text
    response = client.delete(f"/datasets/{dataset_id}")
    assert response.status_code == 409 and job.json()["id"] in response.json()["detail"]
    assert client.get(f"/datasets/{dataset_id}").status_code == 200
