"""``/v1/operators``: the admin creates operators and gives them tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from ..models import Operator, OperatorWithToken, Page, TokenCreated
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .fields import StatusChange, name_in_path, text_field
from .json_body import StrictJSONRoute

router = APIRouter(
    prefix="/v1/operators",
    tags=["operators (admin)"],
    responses=ERROR_RESPONSES,
    route_class=StrictJSONRoute,
)


class OperatorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "acme"}]})

    name: str = text_field()


@router.post("", status_code=201, responses=CONFLICT_RESPONSE)
async def create_operator(
    body: OperatorCreate, service: ServiceDep, caller: CallerDep
) -> OperatorWithToken:
    """Create an operator; the answer holds its first token, shown this once."""
    return await service.operators.create(body.name, caller=caller)


@router.get("")
async def list_operators(service: ServiceDep, caller: CallerDep) -> Page[Operator]:
    return Page[Operator](data=await service.operators.get_all(caller=caller))


@router.post("/{operator_id}/tokens", status_code=201)
async def create_token(operator_id: str, service: ServiceDep, caller: CallerDep) -> TokenCreated:
    """A further token for the operator (id or name), shown this once."""
    return await service.tokens.create(operator_id, caller=caller)


OperatorRef = Annotated[str, name_in_path("The operator's id or name.")]


@router.patch("/{operator_id}", responses=CONFLICT_RESPONSE)
async def change_operator(
    operator_id: OperatorRef, body: StatusChange, service: ServiceDep, caller: CallerDep
) -> Operator:
    """Disable or enable an operator. Disabled: its tokens are refused at once, its webhooks
    are disabled (their queued deliveries fail unsent; `recover` re-queues them later), and
    events at its locations are accepted with no delivery. Enabled: its tokens work again
    and the webhooks its disabling disabled are enabled."""
    return await service.operators.set_status(operator_id, body.status.value, caller=caller)


@router.delete("/{operator_id}", status_code=204, response_class=Response)
async def delete_operator(
    operator_id: OperatorRef, service: ServiceDep, caller: CallerDep
) -> Response:
    """Delete an operator with its tokens, locations, webhooks, events, deliveries and
    attempts (disabled first, so its tokens stop at once; then deleted in short
    transactions; if interrupted, delete again)."""
    await service.operators.delete(operator_id, caller=caller)
    return Response(status_code=204)
