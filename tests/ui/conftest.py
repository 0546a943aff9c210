"""The dashboard in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright through its
executable_path; Playwright's own browser download is never used) against `python -m app.cli serve` on
PostgreSQL + Redis with a real Celery worker. No browser: the tests skip with the reason, or fail under
CI=true. Each test's pages are saved as screenshots under tests/ui/screenshots/ (git-ignored).

These tests deploy, roll back and delete as a user does, so they run on a store and a worker of their own: the rest
of the suite never meets a model they deployed."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from testkit.processes import ServeProcess, WorkerProcess, running_worker
from testkit.store import production_store

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
SCREENSHOTS = Path(__file__).parent / "screenshots"
ADMIN_KEY, PREDICT_KEY = "ui-admin-key", "ui-predict-key"
PHONE = {"width": 390, "height": 844}


def find_browser() -> str | None:
    """The first Chromium on PATH."""
    return next(filter(None, map(shutil.which, BROWSER_NAMES)), None)


@pytest.fixture(scope="session")
def browser():
    executable = find_browser()
    if executable is None:
        reason = f"no Chromium on PATH ({', '.join(BROWSER_NAMES)}): apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def production_settings(tmp_path_factory) -> Iterator[Settings]:
    """The dashboard tests' own PostgreSQL database and queue (testkit.store.production_store)."""
    with production_store("test_ui", tmp_path_factory.mktemp("ui-artifacts")) as settings:
        yield settings


@pytest.fixture(scope="package")
def celery_worker(production_settings, tmp_path_factory) -> Iterator[WorkerProcess]:
    """A worker on the dashboard tests' store, started while their server boots (`_serve`)."""
    yield from running_worker(production_settings, tmp_path_factory.mktemp("ui-worker") / "worker.log")


def _serve(settings: Settings, log: Path, request) -> Iterator[ServeProcess]:
    """The server with one /predict replica per model (the tests predict one sentence at a time), booting while
    the worker starts."""
    server = ServeProcess(settings.model_copy(update={"predict_workers": 1}), log)
    try:
        with ThreadPoolExecutor(1) as boot:
            booted = boot.submit(server.start)
            request.getfixturevalue("celery_worker")
            booted.result().close()
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def server(production_settings, tmp_path_factory, request) -> Iterator[ServeProcess]:
    """`python -m app.cli serve` on the dashboard tests' store; their Celery worker trains."""
    yield from _serve(production_settings, tmp_path_factory.mktemp("ui") / "server.log", request)


@pytest.fixture(scope="module")
def keyed_server(production_settings, tmp_path_factory, request) -> Iterator[ServeProcess]:
    """The same service with API_KEYS set: an admin and a predict key."""
    settings = production_settings.model_copy(update={"api_keys": f"{ADMIN_KEY}:admin,{PREDICT_KEY}:predict"})
    yield from _serve(settings, tmp_path_factory.mktemp("ui-keys") / "server.log", request)


@pytest.fixture(scope="module")
def api(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


class Pages:
    """Opens browser pages; every page's script errors fail the test, and `shot` saves a screenshot."""

    def __init__(self, browser, request):
        self.browser, self.name, self.contexts, self.errors = browser, request.node.name, [], []

    def open(self, url: str, viewport: dict | None = None):
        context = self.browser.new_context(viewport=viewport or {"width": 1024, "height": 768},
                                           accept_downloads=True)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("dialog", lambda dialog: dialog.accept())  # confirm() before a delete
        page.goto(url)
        return page

    def shot(self, page, name: str, full_page: bool = True) -> Path:
        """The whole page, or what the window shows (full_page=False: the README's pictures come from these)."""
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=path, full_page=full_page)
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser, request) -> Iterator[Pages]:
    opened = Pages(browser, request)
    yield opened
    opened.close()
    # a refused request logs "Failed to load resource" in the console: that is the API answering 4xx, not a bug
    assert [e for e in opened.errors if "Failed to load resource" not in e] == []
