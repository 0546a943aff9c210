"""API keys with roles: `API_KEYS="key1:admin,key2:predict"`; unset means no auth.

`require_admin` and `require_predict` (predict role or admin) are FastAPI dependencies; put them on routers so
they run before any path lookup (401/403 come before 404). `install_auth(app, settings)` parses API_KEYS once
(a malformed value fails at startup) and makes a malformed JSON body or path answer 401/403 rather than 422
when the key is missing or lacks the role: FastAPI parses the body before it runs dependencies.
Keys are compared with hmac.compare_digest against every configured key and never logged.
"""
import hmac
from enum import StrEnum

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import validation_error_response
from app.settings import Settings


class Role(StrEnum):
    admin = "admin"
    predict = "predict"


class ApiKeysError(ValueError):
    """API_KEYS is malformed; the message says where, without echoing any key."""


def parse_api_keys(spec: str | None) -> dict[str, Role] | None:
    """{key: role} from "key:role,..."; None when auth is off (unset or blank)."""
    if spec is None or not spec.strip():
        return None
    keys: dict[str, Role] = {}
    for position, entry in enumerate(spec.split(","), start=1):
        key, sep, role = entry.strip().rpartition(":")
        if not sep or not key:
            raise ApiKeysError(f'API_KEYS entry {position} is not "key:role"')
        if role not in Role.__members__:
            raise ApiKeysError(f"API_KEYS entry {position}: role must be one of {', '.join(Role)}, got {role!r}")
        if key in keys:
            raise ApiKeysError(f"API_KEYS entry {position} repeats an earlier key")
        keys[key] = Role(role)
    return keys


def install_auth(app: FastAPI, settings: Settings) -> None:
    app.state.api_keys = parse_api_keys(settings.api_keys)
    app.add_exception_handler(RequestValidationError, _auth_before_validation_error)
    app.add_exception_handler(StarletteHTTPException, _auth_before_http_error)


_bearer = HTTPBearer(auto_error=False, description='API key from API_KEYS: "Authorization: Bearer <key>".')


def _role_of(api_keys: dict[str, Role], presented: str) -> Role | None:
    """Constant time in the position of the match: every configured key is compared."""
    role = None
    for key, key_role in api_keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            role = key_role
    return role


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None, allowed: set[Role]) -> None:
    api_keys: dict[str, Role] | None = request.app.state.api_keys
    if api_keys is None:
        return
    role = _role_of(api_keys, credentials.credentials) if credentials else None
    if role is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or unknown API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if role not in allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {role} role may not call this endpoint")


# async, though they never await: FastAPI runs a sync dependency in its threadpool, a thread hop per request
async def require_admin(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    _check(request, credentials, {Role.admin})


async def require_predict(request: Request,
                          credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    _check(request, credentials, {Role.admin, Role.predict})


_ROLE_CHECKS = (require_admin, require_predict)


async def _auth_failure(request: Request) -> HTTPException | None:
    """The 401/403 the matched route's auth dependency would raise, or None (allowed, or no route matched)."""
    route = request.scope.get("route")
    pending = list(route.dependant.dependencies) if isinstance(route, APIRoute) else []
    while pending:
        dependency = pending.pop()
        if dependency.call in _ROLE_CHECKS:
            try:
                await dependency.call(request, await _bearer(request))
            except HTTPException as failure:
                return failure
        pending.extend(dependency.dependencies)
    return None


async def _auth_before_validation_error(request: Request, error: RequestValidationError):
    if failure := await _auth_failure(request):
        return await http_exception_handler(request, failure)
    return validation_error_response(error)


async def _auth_before_http_error(request: Request, error: StarletteHTTPException):
    if error.status_code not in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
        if failure := await _auth_failure(request):
            return await http_exception_handler(request, failure)
    return await http_exception_handler(request, error)
