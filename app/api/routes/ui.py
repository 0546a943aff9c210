"""The dashboard: `/ui` serves one static page whose ES modules (app/static/ui/, under the open /static mount)
drive the service through its public REST API and server-sent events only; `/` redirects there.

The shell is open, like /static: it is the same HTML and script for every visitor and holds no data. Everything it
shows comes from API calls that carry the key the visitor typed (kept in the browser's sessionStorage), so with
API_KEYS set a visitor without a key sees a key prompt and nothing else, and a predict key sees what its role may
read. A browser could not send a key with the page request itself: a navigation carries no Authorization header.
"""
from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from app.api.routes.ops import STATIC_DIR

UI_PAGE = STATIC_DIR / "ui" / "index.html"

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui")


@router.get("/ui")
def dashboard() -> FileResponse:
    return FileResponse(UI_PAGE, headers={"Cache-Control": "no-cache"})
