"""``/v1/tokens``: list API tokens (never their values) and revoke them.

A revoked token answers 401 on the very next request, on every API process: tokens are looked
up in the database on each request, not cached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from ..models import Page, Token
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .fields import id_in_path, name_in_query
from .json_body import StrictJSONRoute

router = APIRouter(
    prefix="/v1/tokens", tags=["tokens"], responses=ERROR_RESPONSES, route_class=StrictJSONRoute
)


@router.get("")
async def list_tokens(
    service: ServiceDep,
    caller: CallerDep,
    operator_id: Annotated[str | None, name_in_query("The operator's id or name.")] = None,
) -> Page[Token]:
    """The caller's tokens (the admin sees all, or one operator's with ``operator_id``);
    ``operator_id`` is null for admin tokens."""
    return Page[Token](data=await service.tokens.get_all(operator_id, caller=caller))


@router.delete("/{token_id}", status_code=204, response_class=Response, responses=CONFLICT_RESPONSE)
async def revoke_token(
    token_id: Annotated[str, id_in_path("The token's id (from GET /v1/tokens).")],
    service: ServiceDep,
    caller: CallerDep,
) -> Response:
    """Revoke a token at once (an operator: its own only). The last admin token cannot be
    revoked (409): create another first."""
    await service.tokens.revoke(token_id, caller=caller)
    return Response(status_code=204)
