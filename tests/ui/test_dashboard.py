"""The dashboard driven in headless Chromium against the real service (PostgreSQL, Redis, a Celery worker):
upload (a bad line, then a good file), a job started from the form and followed live to its end, the model page
(predict, deploy, download), cancel, and the pages at phone width. Screenshots go to tests/ui/screenshots/."""
import re
import shutil
import tarfile

import pytest

from app.db.session import make_session_factory
from testkit.store import new_model_dir, register_model_dir
from tests.factories import TINY_HYPERPARAMETERS
from tests.harness import wait_for_job
from tests.ui.conftest import PHONE

# every visible control has a label (its <label>, aria-label or aria-labelledby; a button its text)
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
                    || (el.tagName === "BUTTON" && el.textContent.trim())))
  .map((el) => el.outerHTML.slice(0, 100))"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
# long enough to watch and to cancel: ~22 steps per epoch at batch 2 on 48 rows
LONG_HYPERPARAMETERS = {**TINY_HYPERPARAMETERS, "epochs": 10, "batch_size": 2}


def drop_file(page, selector: str, name: str, text: str) -> None:
    """Drops a file on `selector` as a drag and drop from the desktop does."""
    page.evaluate("""([selector, name, text]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name, {type: "text/tab-separated-values"}));
        document.querySelector(selector).dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", [selector, name, text])


def upload(api, path) -> str:
    response = api.post("/datasets", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def queue_job(api, dataset_id, base_model, hyperparameters) -> dict:
    response = api.post("/jobs", json={"dataset_id": dataset_id, "base_model": str(base_model),
                                       "hyperparameters": hyperparameters})
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture(scope="module")
def dataset_id(api, train_tsv) -> str:
    return upload(api, train_tsv)


def test_root_redirects_to_the_dashboard_and_a_bad_line_is_shown_with_its_number(server, pages, api, train_tsv):
    page = pages.open(server.url + "/")
    assert page.url.endswith("/ui")
    page.get_by_role("heading", name="Datasets").wait_for()
    drop_file(page, ".dropzone", "bad.tsv", "label\ttext\npos\ta fine film\nneg\tno tab\there\n")
    page.get_by_role("button", name="Upload").click()
    error = page.get_by_role("alert")
    error.wait_for()
    assert "line 3: expected 2 fields, got 3" in error.inner_text()
    assert page.evaluate(UNLABELLED) == []
    pages.shot(page, "datasets-error")
    names = [d["name"] for d in api.get("/datasets").json()["items"]]
    assert "bad.tsv" not in names

    # a good file: its header fills the column choices; the dataset page charts its label counts
    page.set_input_files("#file", train_tsv)
    assert page.locator("#text_column option").all_inner_texts() == ["(default)", "label", "sentence"]
    page.select_option("#text_column", "sentence")
    page.fill("#ds-name", "sst2-ui")
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("heading", name="Dataset sst2-ui").wait_for()
    stored = next(d for d in api.get("/datasets").json()["items"] if d["name"] == "sst2-ui")
    assert stored["text_column"] == "sentence"
    page.get_by_text("Label counts as a table").click()
    counts = page.locator("details table tbody tr").all_inner_texts()
    assert sorted(counts) == sorted(f"{label}\t{n}" for label, n in stored["labels"].items())
    assert page.locator("figure.chart canvas").count() == 1  # uPlot's bar chart
    pages.shot(page, "datasets")

    page.get_by_role("button", name="Delete dataset sst2-ui").click()
    page.get_by_role("link", name="sst2-ui").wait_for(state="detached")
    assert api.get(f"/datasets/{stored['id']}").status_code == 404


def test_a_job_from_the_form_streams_its_curves_to_the_end(server, pages, api, dataset_id, tiny_base_model):
    page = pages.open(f"{server.url}/ui#/jobs/new?dataset={dataset_id}")
    page.get_by_role("heading", name="New job").wait_for()
    schema = api.get("/openapi.json").json()["components"]["schemas"]["Hyperparameters"]["properties"]
    epochs = page.locator("#hp-epochs + input")
    assert epochs.get_attribute("max") == str(schema["epochs"]["anyOf"][0]["maximum"])  # ranges from the schema
    assert page.locator("#hp-pooling option").all_inner_texts() == schema["pooling"]["enum"]
    assert page.evaluate(UNLABELLED) == []
    page.select_option("#job-base", label="another BERT directory on the server…")
    page.fill("#job-base-path", str(tiny_base_model))
    for name, value in LONG_HYPERPARAMETERS.items():
        page.select_option(f"#hp-{name}", "value")
        page.fill(f"#hp-{name} + input", str(value))
    page.get_by_role("button", name="Start the job").click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    assert api.get(f"/jobs/{job_id}").json()["hyperparameters"]["batch_size"] == 2

    loss = page.locator("figure.chart", has_text="Loss")
    page.wait_for_function("""() => document.querySelector("#job-status")?.innerText === "running"
        && Number(document.querySelector("figure.chart").dataset.points) > 0""")
    seen_running = int(loss.get_attribute("data-points"))
    pages.shot(page, "job-running")
    page.locator("#job-status", has_text="succeeded").wait_for(timeout=120_000)
    history = api.get(f"/jobs/{job_id}/metrics").json()
    page.wait_for_function("n => document.querySelector('figure.chart').dataset.points === String(n)",
                           arg=len(history["train"]))
    assert len(history["train"]) > seen_running  # the curve grew after the page saw it running
    assert page.locator("#job-progress").evaluate("p => p.value") == 1
    assert page.get_by_role("table", name="What auto chose").is_visible()  # pooling, eval_steps, ... were auto
    assert f"{len(history['eval'])} evaluations" in page.locator("figure.chart", has_text="Eval metrics").inner_text()
    pages.shot(page, "job")
    page.locator("#job-model-link").click()
    page.get_by_role("heading", name=re.compile("^Model")).wait_for()


def test_model_page_predicts_every_class_deploys_and_downloads(server, pages, api, dataset_id, tiny_base_model,
                                                                 production_settings, tmp_path):
    job = wait_for_job(api, queue_job(api, dataset_id, tiny_base_model, TINY_HYPERPARAMETERS)["id"])
    assert job["status"] == "succeeded", job
    # a second model, not deployed: a copy of the trained one registered as a finished job registers it
    copy = new_model_dir(production_settings.artifact_dir)
    shutil.copytree(production_settings.artifact_dir / "models" / job["model_id"], copy)
    copy_id = register_model_dir(make_session_factory(production_settings.database_url), copy)
    model = api.get(f"/models/{copy_id}").json()
    assert model["deployed"] is False

    page = pages.open(f"{server.url}/ui#/models/{model['id']}")
    page.fill("#predict-text", "a gripping, beautiful film")
    page.get_by_role("button", name="Predict").click()
    bars = page.get_by_role("list", name="Scores of every class").locator("li")
    bars.first.wait_for()
    answer = api.post("/predict", json={"model": model["id"], "inputs": ["a gripping, beautiful film"],
                                        "return_all_scores": True}).json()["predictions"][0]
    assert sorted(bars.all_inner_texts()) == sorted(f"{label}\n{100 * p:.1f}%" for label, p in answer["scores"].items())
    assert page.locator("#predicted-label").inner_text() == answer["label"]

    with page.expect_download() as download:
        page.locator("#download").click()
    archive = tmp_path / "model.tar.gz"
    download.value.save_as(archive)
    with tarfile.open(archive) as tar:
        assert f"{model['id']}/config.json" in tar.getnames()

    page.locator("#deploy").click()
    page.locator(".badge.deployed").first.wait_for()
    assert api.get(f"/models/{model['id']}").json()["deployed"] is True
    pages.shot(page, "model")


def test_cancel_a_running_job_from_its_page(server, pages, api, dataset_id, tiny_base_model):
    job = queue_job(api, dataset_id, tiny_base_model, {**LONG_HYPERPARAMETERS, "epochs": 50})
    page = pages.open(f"{server.url}/ui#/jobs/{job['id']}")
    page.locator("#job-status", has_text="running").wait_for(timeout=60_000)
    page.get_by_role("button", name="Cancel job").click()
    page.locator("#job-status", has_text="cancelled").wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Cancel job").is_hidden()
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"


@pytest.mark.parametrize("route", ["#/datasets", "#/jobs/new", "#/models", "#/jobs", "#/compare"])
def test_pages_fit_a_phone_and_label_every_control(server, pages, route, dataset_id):
    page = pages.open(f"{server.url}/ui{route}", viewport=PHONE)
    page.locator("main h1").wait_for()
    page.wait_for_load_state("networkidle")
    assert page.evaluate(OVERFLOW) <= 0
    assert page.evaluate(UNLABELLED) == []
    pages.shot(page, f"phone-{route.strip('#/').replace('/', '-')}")
