"""What every page of the control center does first: find who is signed in (through the
service, on every request), check the CSRF token of every form, and render a template.

Routes ask for a ``Visit`` and get the caller, exactly as a REST route gets ``CallerDep``;
what they show comes from ``Service`` alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .._version import __version__
from ..config import Settings
from ..errors import Forbidden, Unauthorized
from ..keys import load_secret_keys
from ..service import Caller, Service, key_file_for
from .once import Once, Shown
from .sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions, csrf_matches

HERE = Path(__file__).parent
PREFIX = "/ui"
NOTICE_COOKIE = "hw_notice"


class SignInNeeded(Exception):
    """No valid session: send the browser to the sign-in page (saying why)."""

    def __init__(self, why: str = "", *, ended: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.ended = ended  # a session was there, and its token no longer works


class CsrfRefused(Exception):
    """A form came without this session's CSRF token: refused (403), nothing done."""


@dataclass
class Center:
    """The control center's state: the app's service (opened by its lifespan) and the
    sessions' keys (derived once the service has found or made the secret key)."""

    settings: Settings
    app_state: Any
    _sessions: Sessions | None = field(default=None, init=False)
    _once: Once | None = field(default=None, init=False)

    @property
    def service(self) -> Service:
        service: Service = self.app_state.service
        return service

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:
            keys = load_secret_keys(self.settings.secret_key, key_file_for(self.settings))
            self._sessions = Sessions(keys)
        return self._sessions

    @property
    def once(self) -> Once:
        if self._once is None:
            keys = load_secret_keys(self.settings.secret_key, key_file_for(self.settings))
            self._once = Once(keys)
        return self._once


def center_of(request: Request) -> Center:
    center: Center = request.app.state.center
    return center


@dataclass
class Visit:
    """One signed-in request: the caller the session's token stands for, right now."""

    request: Request
    center: Center
    session: Session
    caller: Caller
    name: str = ""  # whom the page says is signed in

    @property
    def service(self) -> Service:
        return self.center.service

    async def form(self) -> FormData:
        """The posted form, once its CSRF token (field or ``X-CSRF-Token``) is checked."""
        form = await self.request.form()
        given = form.get(CSRF_FIELD)
        token = given if isinstance(given, str) else self.request.headers.get(CSRF_HEADER)
        if not csrf_matches(token, self.session):
            raise CsrfRefused()
        return form

    def require_admin(self) -> None:
        self.caller.require_admin()

    def show_once(self, path: str, shown: Shown, notice: str | None = None) -> Response:
        """After a form that made a secret: a redirect to the page that shows it, once."""
        response = see_other(path, notice)
        self.center.once.keep(response, self.request, self.session, shown)
        return response

    def take_once(self, *kinds: str) -> Shown | None:
        """The secret a form left for this page (then ``spent`` on the answer), if any."""
        return self.center.once.take(self.request, self.session, kinds)


async def visit(request: Request) -> Visit:
    """Who is signed in; ``SignInNeeded`` if nobody is, or their token stopped working."""
    center = center_of(request)
    session = center.sessions.open(request.cookies.get(COOKIE))
    if session is None or session.token is None:
        raise SignInNeeded()
    try:
        caller = await center.service.access.authenticate(session.token)
    except (Unauthorized, Forbidden) as exc:
        raise SignInNeeded(
            "Your session has ended: its token was revoked or its operator disabled "
            f"({exc.message}).",
            ended=True,
        ) from None
    found = Visit(request, center, session, caller)
    operator = await center.service.operators.of_caller(caller)
    found.name = "Admin" if operator is None else operator.name
    request.state.visit = found
    return found


def text(form: FormData, name: str) -> str:
    """A form field as text, stripped; empty when missing."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def texts(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def see_other(path: str, notice: str | None = None) -> RedirectResponse:
    """After a form: back to a page (303), with a short notice to show there. The notice
    rides in a cookie of a minute, not in the URL: a link from elsewhere cannot put words
    in the control center's mouth."""
    response = RedirectResponse(path, status_code=303)
    if notice:
        response.set_cookie(
            NOTICE_COOKIE,
            quote(notice[:300]),
            max_age=60,
            path=PREFIX,
            httponly=True,
            samesite="lax",
        )
    return response


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = (datetime.now(UTC) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            break
    else:
        amount = f"{int(seconds)} s"
    return f"in {amount}" if future else f"{amount} ago"


def _due(value: datetime | None) -> str:
    """When a pending delivery goes out next: a time to come, or "due now"."""
    if value is None:
        return "—"
    return "due now" if value <= datetime.now(UTC) else _ago(value)


def _pretty_json(value: object) -> str:
    """A JSON value (or body bytes) indented for reading; bytes that are not JSON as text."""
    if isinstance(value, bytes):
        try:
            return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
        except ValueError:
            return value.decode("utf-8", errors="replace")
    return json.dumps(value, indent=2, ensure_ascii=False)


def _json_text(value: object) -> str:
    """Jinja's ``tojson`` replaced: its answer is marked safe, and its double quotes then end
    a double-quoted attribute (S6 of issue 25). Plain text here, escaped where it lands."""
    return json.dumps(value, ensure_ascii=False)


def _field_errors(error: object, *fields: str, under: bool = True) -> list[str]:
    """The messages an error (``InvalidInput``'s ``details``) gives for these fields, and
    unless ``under`` is false for those under them (``auth`` for ``auth.password``), to show
    beside the field's input."""
    details = getattr(error, "details", None) or []
    found = []
    for detail in details:
        name = str(detail.get("field", "")) if isinstance(detail, dict) else ""
        if name in fields or (under and name.startswith(tuple(f + "." for f in fields))):
            found.append(str(detail.get("message", "")))
    return found


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    when=_when, ago=_ago, due=_due, pretty_json=_pretty_json, tojson=_json_text
)


def _static_stamp() -> str:
    """A digest of the static files: their URLs change whenever their contents do, so a
    browser never keeps a cached script older than the pages it serves."""
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


environment.globals.update(
    field_errors=_field_errors,
    prefix=PREFIX,
    version=__version__,
    static_stamp=_static_stamp(),
    csrf_field=CSRF_FIELD,
)


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page, with what the layout needs: who is signed in, the CSRF token, the notice."""
    current: Visit | None = getattr(request.state, "visit", None)
    notice = unquote(request.cookies.get(NOTICE_COOKIE, ""))
    page = environment.get_template(template).render(
        request=request,
        visit=current,
        who=current.caller if current else None,
        csrf=current.session.csrf if current else context.pop("csrf", ""),
        notice=notice,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    if notice and "HX-Request" not in request.headers:  # shown: once is enough
        response.delete_cookie(NOTICE_COOKIE, path=PREFIX, httponly=True, samesite="lax")
    return response


def hx_redirect(location: str) -> Response:
    """For htmx: a full navigation (a fragment must not land in the page)."""
    return Response(status_code=200, headers={"HX-Redirect": location})
