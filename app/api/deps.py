"""FastAPI dependencies: the store session and the settings the app was created with."""
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from app.schemas import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from app.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description=f"Page size, at most {MAX_PAGE_LIMIT}.")]
OffsetQuery = Annotated[int, Query(ge=0, description="Items to skip.")]
DEFAULT_LIMIT = DEFAULT_PAGE_LIMIT
