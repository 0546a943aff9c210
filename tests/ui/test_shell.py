"""The dashboard's shell without a browser: / redirects to /ui; the page and its modules are served by the app
(nothing from another host); every module a page imports exists; the shell is open while the data stays keyed."""
import re
from pathlib import Path

from fastapi.testclient import TestClient

from app.api.routes.ops import STATIC_DIR
from app.main import create_app
from testkit.store import sqlite_settings_for

UI_DIR = STATIC_DIR / "ui"
IMPORT = re.compile(r'^import .* from "([^"]+)";$', re.MULTILINE)


def test_root_redirects_to_the_dashboard_and_the_page_loads_only_local_assets(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/ui"
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert {"/static/ui/app.js", "/static/ui/style.css", "/static/vendor/uplot/uPlot.min.css"} <= set(assets)
    for asset in assets:
        assert asset.startswith("/"), asset  # no CDN: the dashboard works without internet
        if asset.startswith("/static/"):
            assert client.get(asset).status_code == 200, asset


def test_every_module_import_resolves_to_a_served_file(client):
    imports = [(module, target) for module in sorted(UI_DIR.rglob("*.js"))
               for target in IMPORT.findall(module.read_text(encoding="utf-8"))]
    assert ("app.js", "./pages/jobs.js") in {(m.name, t) for m, t in imports}
    for module, target in imports:
        path = (STATIC_DIR.parent / target.lstrip("/")) if target.startswith("/") else (module.parent / target)
        assert path.resolve().is_file(), f"{module.name} imports {target}"
        assert client.get("/" + str(path.resolve().relative_to(STATIC_DIR.parent))).status_code == 200


def test_the_shell_is_open_but_the_data_needs_a_key(tmp_path: Path):
    settings = sqlite_settings_for(tmp_path, api_keys="k:admin")
    with TestClient(create_app(settings)) as guarded:
        assert guarded.get("/ui").status_code == 200
        assert guarded.get("/static/ui/api.js").status_code == 200
        assert guarded.get("/datasets").status_code == 401 and guarded.get("/openapi.json").status_code == 401
        assert guarded.get("/datasets", headers={"Authorization": "Bearer k"}).status_code == 200
