"""Signing in and out, and who may sign in: tokens (an operator's own) and operators (the
admin's)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ..errors import Forbidden, TooManyRequests, Unauthorized
from .once import Shown, spent
from .pages import (
    PREFIX,
    Center,
    CsrfRefused,
    center_of,
    render,
    see_other,
    text,
    visit,
)
from .sessions import COOKIE, CSRF_FIELD, Session, csrf_matches, forget

SIGNED_OUT = "signed-out"
ENDED = "ended"


async def sign_in_page(request: Request) -> Response:
    center = center_of(request)
    session = center.sessions.open(request.cookies.get(COOKIE))
    if session is not None and session.token is not None:
        try:
            await center.service.access.authenticate(session.token)
        except (Unauthorized, Forbidden):
            pass
        else:
            return see_other(f"{PREFIX}/")
    fresh = Session.new()  # before anyone signs in: a CSRF secret for the sign-in form
    response = _sign_in_form(request, fresh, why=request.query_params.get("why", ""))
    center.sessions.put(response, fresh, request)
    return response


def _sign_in_form(
    request: Request, session: Session, *, why: str = "", error: str = "", status: int = 200
) -> Response:
    messages = {
        SIGNED_OUT: "You are signed out.",
        ENDED: "Your session has ended: its token was revoked or its operator disabled. "
        "Sign in with a token that works.",
    }
    return render(
        request,
        "sign_in.html",
        status=status,
        csrf=session.csrf,
        message=messages.get(why, ""),
        error=error,
        next=_next(request.query_params.get("next")),
    )


def _next(wanted: str | None) -> str:
    """Where to go after signing in: a page of ours, never another site."""
    if wanted and wanted.startswith(f"{PREFIX}/") and "//" not in wanted and "\\" not in wanted:
        return wanted
    return f"{PREFIX}/"


async def _form_of_this_browser(request: Request) -> tuple[Center, Session, FormData]:
    """A form posted before (or without) signing in: its CSRF token must be the one the
    browser's cookie holds."""
    center = center_of(request)
    session = center.sessions.open(request.cookies.get(COOKIE))
    form = await request.form()
    given = form.get(CSRF_FIELD)
    if session is None or not csrf_matches(given if isinstance(given, str) else None, session):
        raise CsrfRefused()
    return center, session, form


async def sign_in(request: Request) -> Response:
    center, session, form = await _form_of_this_browser(request)
    limit = center.app_state.failed_auth
    address = request.client.host if request.client else ""
    wait = limit.retry_after(address)
    if wait is not None:
        raise TooManyRequests(
            f"Too many tokens that are not valid from {address}; try again in {wait} s.",
            retry_after=wait,
        )
    token = text(form, "token")
    try:
        await center.service.access.authenticate(token)
    except (Unauthorized, Forbidden) as exc:
        if token:
            limit.failed(address)
        message = "Paste your token (it starts with hwt_)." if not token else exc.message
        return _sign_in_form(request, session, error=message, status=401)
    signed_in = Session.new(token)  # a new CSRF secret once signed in
    target = _next(text(form, "next"))
    response = see_other(target)
    center.sessions.put(response, signed_in, request)
    return response


async def sign_out(request: Request) -> Response:
    await _form_of_this_browser(request)
    response = see_other(f"{PREFIX}/sign-in?why={SIGNED_OUT}")
    forget(response, request)
    return response


# tokens


TOKEN = "token"


async def tokens_page(request: Request) -> Response:
    current = await visit(request)
    tokens = await current.service.tokens.get_all(caller=current.caller)
    shown = current.take_once(TOKEN)
    created = {"token": shown.values.get("token", "")} if shown else None
    page = render(request, "tokens.html", tokens=tokens, created=created)
    return spent(page, request) if shown else page


async def create_token(request: Request) -> Response:
    current = await visit(request)
    await current.form()
    created = await current.service.tokens.create_own(caller=current.caller)
    return current.show_once(f"{PREFIX}/tokens", Shown(TOKEN, created.id, {"token": created.token}))


async def revoke_token(request: Request) -> Response:
    current = await visit(request)
    await current.form()
    token_id = request.path_params["token_id"]
    await current.service.tokens.revoke(token_id, caller=current.caller)
    return see_other(f"{PREFIX}/tokens", f"Token {token_id} revoked: it stopped working at once.")


# operators (the admin's)


async def operators_page(request: Request) -> Response:
    current = await visit(request)
    current.require_admin()
    operators = await current.service.operators.get_all(caller=current.caller)
    shown = current.take_once(TOKEN)
    page = render(
        request,
        "operators.html",
        operators=operators,
        created=shown.values.get("token", "") if shown else None,
        created_for=shown.subject if shown else "",
        error="",
    )
    return spent(page, request) if shown else page


async def create_operator(request: Request) -> Response:
    current = await visit(request)
    current.require_admin()
    form = await current.form()
    created = await current.service.operators.create(text(form, "name"), caller=current.caller)
    shown = Shown(TOKEN, created.name, {"token": created.token})
    return current.show_once(f"{PREFIX}/operators", shown, f"Operator {created.name} created.")


async def create_operator_token(request: Request) -> Response:
    current = await visit(request)
    current.require_admin()
    await current.form()
    operator_id = request.path_params["operator_id"]
    created = await current.service.tokens.create(operator_id, caller=current.caller)
    shown = Shown(TOKEN, operator_id, {"token": created.token})
    return current.show_once(f"{PREFIX}/operators", shown)


async def set_operator_status(request: Request) -> Response:
    current = await visit(request)
    current.require_admin()
    form = await current.form()
    operator_id = request.path_params["operator_id"]
    status = text(form, "status")
    await current.service.operators.set_status(operator_id, status, caller=current.caller)
    return see_other(f"{PREFIX}/operators", f"Operator {operator_id} {status}.")
