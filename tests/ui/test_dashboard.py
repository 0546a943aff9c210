"""The dashboard driven in headless Chromium against the real service (PostgreSQL, Redis, a Celery worker):
upload (a bad line, then a good file), a job started from the form and followed live to its end, the model page
(predict, deploy, download), a deploy the promotion gate refuses, cancel, the pages at phone width, their text
contrast, and the keyboard alone.
Screenshots go to tests/ui/screenshots/."""
import re
import shutil
import tarfile

import httpx
import pytest

from app.db.session import make_session_factory
from testkit.store import new_model_dir, register_copy, register_model_dir
from tests.factories import (
    TINY_HYPERPARAMETERS,
    make_tiny_base,
    sentiment_examples,
    topic_examples,
    train_sentiment_model,
    write_tsv,
)
from tests.harness import queue_job, upload_dataset, wait_for_job
from tests.ui.conftest import ADMIN_KEY, PHONE, PREDICT_KEY

# every visible control has a label (its <label>, aria-label or aria-labelledby; a button its text)
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
                    || (el.tagName === "BUTTON" && el.textContent.trim())))
  .map((el) => el.outerHTML.slice(0, 100))"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
# the focused element: whether it matches a selector, and whether it (or its parent) draws a focus ring
FOCUSED = """(wanted) => {
  const el = document.activeElement;
  const ringed = (e) => { const style = getComputedStyle(e);
    return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2; };
  return {html: el.outerHTML.slice(0, 100), ring: ringed(el) || ringed(el.parentElement), match: el.matches(wanted)};
}"""
# every visible text whose contrast with what is behind it is below WCAG AA's: 4.5:1, or 3:1 for large text (24px, or
# 18.66px bold); the background is the element's and its ancestors' background colours composited, alpha included
LOW_CONTRAST = """() => {
  const rgba = (css) => { const [r, g, b, a = 1] = css.match(/[\\d.]+/g).map(Number); return [r, g, b, a]; };
  const over = ([r, g, b, a], [R, G, B]) => [r * a + R * (1 - a), g * a + G * (1 - a), b * a + B * (1 - a)];
  const behind = (element) => {
    const layers = [];
    for (let el = element; el; el = el.parentElement) {
      const colour = rgba(getComputedStyle(el).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] === 1) break;
    }
    return layers.reduceRight((below, layer) => over(layer, below), [255, 255, 255]);
  };
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const seen = new Set(), failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || seen.has(el) || !el.checkVisibility({visibilityProperty: true})) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const background = behind(el);
    const [a, b] = [luminance(over(rgba(style.color), background)), luminance(background)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)}: ${el.outerHTML.slice(0, 120)}`);
  }
  return failures;
}"""
# long enough to watch and to cancel: ~22 steps per epoch at batch 2 on 48 rows
LONG_HYPERPARAMETERS = {**TINY_HYPERPARAMETERS, "epochs": 6, "batch_size": 2}


def drop_file(page, selector: str, name: str, text: str) -> None:
    """Drops a file on `selector` as a drag and drop from the desktop does."""
    page.evaluate("""([selector, name, text]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name, {type: "text/tab-separated-values"}));
        document.querySelector(selector).dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", [selector, name, text])


def evaluable_names(api, model: dict) -> list[str]:
    """The names of the datasets the server evaluates `model` on (app/evaluation.check_evaluable): its kind, and no
    label it lacks."""
    multi_label = model["problem_type"] == "multi_label_classification"
    return [d["name"] for d in api.get("/datasets", params={"limit": 200}).json()["items"]
            if d["multi_label"] == multi_label and set(d["labels"]) <= set(model["labels"])]


@pytest.fixture(scope="module")
def dataset_id(api, train_tsv) -> str:
    return upload_dataset(api, train_tsv)


@pytest.fixture(scope="module", autouse=True)
def queued_jobs(api, dataset_id, tiny_base_model) -> list[dict]:
    """Two tiny jobs (seeds 1 and 2) queued before the first test: they train while the tests that need no
    worker run."""
    return [queue_job(api, dataset_id, tiny_base_model, {**TINY_HYPERPARAMETERS, "seed": seed}) for seed in (1, 2)]


@pytest.fixture(scope="module")
def trained_jobs(api, queued_jobs) -> list[dict]:
    """The queued jobs, finished: each model with its held-out report."""
    done = [wait_for_job(api, job["id"]) for job in queued_jobs]
    assert [job["status"] for job in done] == ["succeeded"] * 2, done
    return done


@pytest.fixture(scope="module", autouse=True)
def queued_multi_label_job(api, tiny_base_model, tmp_path_factory) -> dict:
    """A tiny multi-label job (labels neg, pos, strong; some rows none), queued before the first test too."""
    topics = write_tsv(tmp_path_factory.mktemp("topics") / "topics.tsv", topic_examples(40, seed=0))
    response = api.post("/datasets", files={"file": (topics.name, topics.read_bytes())},
                        data={"label_delimiter": ",", "allow_no_label": "true"})
    assert response.status_code == 201, response.text
    return queue_job(api, response.json()["id"], tiny_base_model, TINY_HYPERPARAMETERS)


def test_root_redirects_to_the_dashboard_and_a_bad_line_is_shown_with_its_number(server, pages, api, train_tsv,
                                                                                tmp_path):
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

    # a good file with a repeated row: its header fills the column choices; the dataset page charts its label
    # counts and shows the data checks' warnings
    lines = train_tsv.read_text(encoding="utf-8").splitlines()
    repeated = tmp_path / "sst2-repeated.tsv"
    repeated.write_text("\n".join([*lines, lines[1]]) + "\n", encoding="utf-8")
    page.set_input_files("#file", repeated)
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
    assert stored["warnings"], stored  # the repeated row at least
    checks = page.get_by_role("note").filter(has_text="Data checks").inner_text()
    assert all(warning["message"] in checks for warning in stored["warnings"])
    pages.shot(page, "datasets")

    page.get_by_role("button", name="Delete dataset sst2-ui").click()
    page.get_by_role("link", name="sst2-ui").wait_for(state="detached")
    assert api.get(f"/datasets/{stored['id']}").status_code == 404


def test_every_page_fits_a_phone_and_labels_every_control(server, pages, dataset_id):
    page = pages.open(f"{server.url}/ui", viewport=PHONE)
    for route in ("#/datasets", "#/jobs/new", "#/jobs", "#/models", "#/compare"):
        page.evaluate("route => { location.hash = route; }", route)
        page.locator(f"main[data-page='{route}']").wait_for()
        page.wait_for_load_state("networkidle")  # the charts sized to the window
        assert page.evaluate(OVERFLOW) <= 0, route
        assert page.evaluate(UNLABELLED) == [], route
        pages.shot(page, f"phone-{route.strip('#/').replace('/', '-')}")


def test_every_page_keeps_its_text_readable(server, pages, api, trained_jobs):
    """The contrast the stylesheet promises (4.5:1), measured on every page, a job's and a model's report included."""
    job = trained_jobs[0]
    page = pages.open(f"{server.url}/ui")
    for route in ("#/datasets", "#/jobs/new", "#/jobs", f"#/jobs/{job['id']}", "#/models",
                  f"#/models/{job['model_id']}", "#/compare"):
        page.evaluate("route => { location.hash = route; }", route)
        page.locator(f"main[data-page='{route}']").wait_for()
        page.wait_for_load_state("networkidle")
        assert page.evaluate(LOW_CONTRAST) == [], route

    # every shade of the confusion matrix, a row's share from 0 to 1 in tenths: the model's report with another
    # matrix, drawn by the dashboard's own report module
    report = api.get(f"/models/{job['model_id']}/evaluation").json()["report"]
    report |= {"labels": [f"class {i}" for i in range(11)],
               "confusion_matrix": [[i, 10 - i] + [0] * 9 for i in range(11)]}
    page.evaluate("""async (report) => {
        const {renderReport} = await import("/static/ui/report.js");
        document.querySelector("main").replaceChildren(renderReport(report));
    }""", report)
    assert page.locator("#confusion-matrix td.cell").count() == 11 * 11
    assert page.evaluate(LOW_CONTRAST) == []


def tab_to(page, wanted: str, presses: int = 200) -> dict:
    """Presses Tab until the focused element matches the CSS selector `wanted`; every element focused on the way
    shows a focus ring (its own outline, or its parent's for the file input inside the drop zone)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED, wanted)
        assert focused["ring"], focused
        if focused["match"]:
            return focused
    raise AssertionError(f"{presses} presses of Tab never reached {wanted}")


def test_the_keyboard_alone_reaches_a_model_and_predicts(server, pages, api, trained_jobs):
    model_id = trained_jobs[0]["model_id"]
    page = pages.open(f"{server.url}/ui#/models")
    page.get_by_role("heading", name="Models").wait_for()
    tab_to(page, "a.skip")
    assert page.locator("a.skip").bounding_box()["x"] >= 0  # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    tab_to(page, f"main a[href='#/models/{model_id}']")
    page.keyboard.press("Enter")
    page.locator(f"main[data-page='#/models/{model_id}']").wait_for()
    tab_to(page, "#predict-text")
    page.keyboard.type("a gripping, beautiful film")
    tab_to(page, "#predict-title ~ p button[type=submit]")
    page.keyboard.press("Enter")
    page.locator("#predicted-label").wait_for()
    answer = api.post("/predict", json={"model": model_id, "inputs": ["a gripping, beautiful film"]}).json()
    assert page.locator("#predicted-label").inner_text() == answer["predictions"][0]["label"]


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
    settings = dict(zip(page.locator("dl.facts dt").all_inner_texts(), page.locator("dl.facts dd").all_inner_texts(),
                        strict=True))
    job = api.get(f"/jobs/{job_id}").json()
    assert settings["eval_steps"] == f"auto → {job['auto_choices']['eval_steps']['value']}"
    assert settings["batch_size"] == "2" and settings["dedupe"] == "false"
    for warning in api.get(f"/jobs/{job_id}").json()["warnings"] or []:
        assert page.get_by_text(warning["message"]).first.is_visible()
    assert f"{len(history['eval'])} evaluations" in page.locator("figure.chart", has_text="Eval metrics").inner_text()
    pages.shot(page, "job")
    page.evaluate("document.getElementById('toast').textContent = ''")  # the toast would hide a chart
    pages.shot(page, "job-window", full_page=False)
    page.locator("#job-model-link").click()
    page.get_by_role("heading", name=re.compile("^Model")).wait_for()


def test_model_page_predicts_every_class_deploys_through_the_gate_rolls_back_and_downloads(
        server, pages, api, trained_jobs, dataset_id, production_settings, tmp_path):
    job = trained_jobs[0]
    api.post(f"/models/{job['model_id']}/deploy").raise_for_status()
    # a second model, not deployed: a copy of the deployed one, registered as a finished job registers its model
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

    page.fill("#min-confidence", "0.99")  # PATCH /models/{id}: below it, /predict abstains
    page.get_by_role("form", name="Minimum confidence").get_by_role("button", name="Save").click()
    page.get_by_text("Saved").wait_for()
    assert api.get(f"/models/{model['id']}").json()["min_confidence"] == 0.99
    page.get_by_role("button", name="Predict").click()
    page.locator("#predicted-label", has_text="abstained").wait_for()

    with page.expect_download() as download:
        page.locator("#download").click()
    archive = tmp_path / "model.tar.gz"
    download.value.save_as(archive)
    with tarfile.open(archive) as tar:
        assert f"{model['id']}/config.json" in tar.getnames()

    page.get_by_label("Only if at least as good as the deployed model").check()  # the promotion gate
    page.select_option("#gate-dataset", dataset_id)
    page.locator("#deploy").click()
    page.locator("h1 .badge.deployed").wait_for()
    assert api.get(f"/models/{model['id']}").json()["deployed"] is True
    latest = api.get("/deployments").json()["items"][0]
    assert (latest["model_id"], latest["previous_model_id"]) == (model["id"], job["model_id"])
    assert latest["detail"] is not None  # the gate's comparison
    pages.shot(page, "model")

    page.locator("#rollback").click()
    page.wait_for_url(f"**/ui#/models/{job['model_id']}")
    page.locator("h1 .badge.deployed").wait_for()
    assert api.get(f"/models/{job['model_id']}").json()["deployed"] is True


def test_a_deploy_the_gate_refuses_shows_its_reasons_and_the_per_class_deltas(server, pages, api, production_settings,
                                                                              tmp_path):
    """A model that learned swapped labels, deployed through the gate over one that learned the right ones."""
    base = make_tiny_base(tmp_path / "base")
    session_factory = make_session_factory(production_settings.database_url)
    good, corrupted = (register_copy(session_factory, production_settings.artifact_dir,
                                     train_sentiment_model(base, tmp_path / name, corrupted=name == "corrupted"))
                       for name in ("good", "corrupted"))
    api.post(f"/models/{good}/deploy").raise_for_status()
    dataset = upload_dataset(api, write_tsv(tmp_path / "sentiment.tsv", sentiment_examples(16, seed=1)))

    page = pages.open(f"{server.url}/ui#/models/{corrupted}")
    page.get_by_label("Only if at least as good as the deployed model").check()
    page.select_option("#gate-dataset", dataset)
    page.locator("#deploy").click()
    refusal = page.locator("#gate-refusal")
    refusal.wait_for()
    again = api.post(f"/models/{corrupted}/deploy", json={"require_better_than_deployed": True,
                                                          "on_dataset": dataset, "max_class_drop": 0.05})
    assert again.status_code == 409  # the same refusal, from the evaluations the first one stored
    detail = again.json()["detail"]
    alert = refusal.get_by_role("alert")
    assert f"does not beat the deployed model {good[:8]}" in alert.inner_text()
    assert alert.locator("li").all_inner_texts() == detail["reasons"] and detail["reasons"]
    assert refusal.get_by_role("table").count() >= 1  # the comparison: per-class deltas
    assert api.get("/models/" + corrupted).json()["deployed"] is False
    assert api.get("/models/" + good).json()["deployed"] is True
    pages.shot(page, "gate-refusal")


def test_cancel_a_running_job_from_its_page(server, pages, api, dataset_id, tiny_base_model):
    job = queue_job(api, dataset_id, tiny_base_model, {**LONG_HYPERPARAMETERS, "epochs": 50})
    page = pages.open(f"{server.url}/ui#/jobs/{job['id']}")
    page.locator("#job-status", has_text="running").wait_for(timeout=60_000)
    page.get_by_role("button", name="Cancel job").click()
    page.locator("#job-status", has_text="cancelled").wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Cancel job").is_hidden()
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"


def test_a_failed_job_shows_its_error(server, pages, api, dataset_id, tiny_base_model, tmp_path):
    broken = tmp_path / "broken-bert"  # config and vocab pass the API's check; the weights fail in the worker
    shutil.copytree(tiny_base_model, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    job = queue_job(api, dataset_id, broken, TINY_HYPERPARAMETERS)
    page = pages.open(f"{server.url}/ui#/jobs/{job['id']}")
    page.locator("#job-status", has_text="failed").wait_for(timeout=60_000)
    error = api.get(f"/jobs/{job['id']}").json()["error"]
    assert error and error in page.get_by_role("alert").inner_text()
    assert page.get_by_role("button", name="Cancel job").is_hidden()
    pages.shot(page, "job-failed")


def test_model_page_shows_the_evaluation_report(server, pages, api, trained_jobs):
    model_id = trained_jobs[0]["model_id"]
    report = api.get(f"/models/{model_id}/evaluation").json()["report"]
    page = pages.open(f"{server.url}/ui#/models/{model_id}")
    per_class = page.get_by_role("table", name="Per class")
    per_class.wait_for()
    rows = [row.split("\t") for row in per_class.locator("tbody tr").all_inner_texts()]
    assert [(r[0], r[3], r[4]) for r in rows] == [(c["label"], f"{c['f1']:.3f}", str(c["support"]))
                                                  for c in report["per_class"]]
    matrix = [[int(cell) for cell in row.locator("td").all_inner_texts()]
              for row in page.locator("#confusion-matrix tbody tr").all()]
    assert matrix == report["confusion_matrix"]
    reliability = page.locator("figure.chart", has_text="Reliability diagram")
    assert reliability.locator("canvas").count() == 1
    assert f"ECE {report['calibration']['ece_before']:.3f} before" in reliability.inner_text()
    assert report["calibration"]["cross_fitted"] and page.get_by_text("the after figures are cross-fitted").is_visible()
    # the evaluation form offers the single-label datasets only: not the multi-label one the module uploaded
    offered = page.locator("#evaluate-dataset option").all_inner_texts()
    assert offered == evaluable_names(api, api.get(f"/models/{model_id}").json()) and "topics" not in offered
    mistakes = page.get_by_role("table", name="The most confident mistakes").locator("tbody tr")
    assert mistakes.count() == len(report["confident_mistakes"])
    for warning in report["warnings"]:
        assert page.get_by_text(warning["message"]).first.is_visible()
    pages.shot(page, "model-report")
    page.evaluate("document.getElementById('report-title').scrollIntoView()")
    pages.shot(page, "model-report-window", full_page=False)
    page.set_viewport_size(PHONE)  # the report's wide tables scroll in their own box
    page.wait_for_function("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert page.evaluate(UNLABELLED) == []
    pages.shot(page, "phone-model")


def test_a_multi_label_model_predicts_labels_and_shows_its_thresholds(server, pages, api, queued_multi_label_job):
    job = wait_for_job(api, queued_multi_label_job["id"])
    assert job["status"] == "succeeded", job
    model = api.get(f"/models/{job['model_id']}").json()
    report = api.get(f"/models/{model['id']}/evaluation").json()["report"]
    page = pages.open(f"{server.url}/ui#/models/{model['id']}")
    page.get_by_role("table", name="Per class").wait_for()
    thresholds = page.get_by_role("table", name="Per class").locator("tbody tr td:last-child").all_inner_texts()
    assert thresholds == [f"{report['thresholds'][c['label']]:.2f}" for c in report["per_class"]]
    assert page.locator("#confusion-matrix").count() == 0  # none for multi-label
    headline = page.get_by_role("table", name=f"{report['n_rows']} rows, multi label classification")
    macro_f1 = headline.locator("tbody tr", has_text="macro-F1").locator("td").all_inner_texts()
    assert "this model, thresholds cross-fitted" in headline.locator("thead").inner_text()
    assert macro_f1[:3] == ["macro-F1", f"{report['metrics']['macro_f1']:.3f}",
                            f"{report['cross_fitted_metrics']['macro_f1']:.3f}"]
    assert page.get_by_role("form", name="Thresholds").locator("input").count() == len(model["labels"])
    assert page.locator("#evaluate-dataset option").all_inner_texts() == evaluable_names(api, model) == ["topics"]
    calibration = page.locator("figure.chart", has_text="Reliability diagram (every label's probability)")
    assert f"ECE {report['calibration']['ece_before']:.3f}" in calibration.inner_text()
    assert page.get_by_text("not temperature-scaled").is_visible()
    page.fill("#predict-text", "a superb film")
    page.get_by_role("button", name="Predict").click()
    bars = page.get_by_role("list", name="Scores of every class").locator("li")
    bars.first.wait_for()
    answer = api.post("/predict", json={"model": model["id"], "inputs": ["a superb film"]}).json()["predictions"][0]
    assert sorted(bars.all_inner_texts()) == sorted(f"{label}\n{100 * p:.1f}%" for label, p in answer["scores"].items())
    assert page.locator("#predicted-label").inner_text() == (", ".join(answer["labels"]) or "no label")
    pages.shot(page, "model-multi-label")


def test_compare_evaluates_both_models_on_a_dataset_and_shows_per_class_deltas(server, pages, api, trained_jobs,
                                                                               dataset_id):
    a, b = (job["model_id"] for job in trained_jobs)
    page = pages.open(f"{server.url}/ui#/compare")
    page.select_option("#compare-a", a)
    page.select_option("#compare-b", b)
    page.select_option("#compare-evaluate-dataset", dataset_id)
    page.get_by_role("button", name="Evaluate both").click()  # two evaluation jobs, followed to their end
    deltas = page.get_by_role("table", name=re.compile("Per-class change"))
    deltas.wait_for(timeout=60_000)
    evaluations = [next(e for e in api.get(f"/models/{m}/evaluations").json()["items"] if e["dataset_id"] == dataset_id)
                   for m in (a, b)]
    comparison = api.get("/evaluations/compare", params={"a": evaluations[0]["id"], "b": evaluations[1]["id"]}).json()
    shown = [row.split("\t") for row in deltas.locator("tbody tr").all_inner_texts()]
    assert [(r[0], r[2], r[3]) for r in shown] == [(c["label"], f"{c['f1']['a']:.3f}", f"{c['f1']['b']:.3f}")
                                                   for c in comparison["per_class"]]
    assert page.get_by_role("region", name="Model A held out").get_by_role("table", name="Per class").is_visible()
    pages.shot(page, "compare")


def test_with_api_keys_the_page_asks_for_a_key_once_and_a_predict_key_sees_its_part(keyed_server, pages,
                                                                                     trained_jobs):
    assert httpx.get(f"{keyed_server.url}/ui").status_code == 200  # the shell: no data, no secrets
    assert httpx.get(f"{keyed_server.url}/datasets").status_code == 401
    page = pages.open(f"{keyed_server.url}/ui")
    dialog = page.get_by_role("dialog", name="API key")
    dialog.wait_for()
    page.fill("#key-input", "not-a-key")
    page.keyboard.press("Enter")
    page.get_by_text("That key was not accepted.").wait_for()
    page.fill("#key-input", ADMIN_KEY)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Datasets").wait_for()
    assert page.evaluate("sessionStorage.getItem('apiKey')") == ADMIN_KEY
    page.reload()
    page.get_by_role("heading", name="Datasets").wait_for()
    assert dialog.is_hidden()  # asked once per tab
    page.get_by_role("button", name="Forget key").click()
    dialog.wait_for()

    page = pages.open(f"{keyed_server.url}/ui#/models/{trained_jobs[0]['model_id']}")
    page.fill("#key-input", PREDICT_KEY)
    page.keyboard.press("Enter")
    page.locator("#report-forbidden").wait_for()  # reports are for admin keys
    assert page.locator("#deploy").count() == 0 and page.locator("#download").count() == 0
    navigation = page.get_by_role("navigation")
    assert navigation.get_by_text("Datasets").is_hidden() and navigation.get_by_text("Models").is_visible()
    assert page.get_by_role("form", name="Try it").is_visible()  # the predict box (tested above with an admin key)
    pages.shot(page, "predict-key")
    page.goto(f"{keyed_server.url}/ui#/datasets")
    page.get_by_role("heading", name="Not for this key").wait_for()
