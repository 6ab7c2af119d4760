"""``/v1/operators``: the admin creates operators and gives them tokens."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from ..models import Operator, OperatorWithToken, Page, TokenCreated
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .fields import text_field

router = APIRouter(prefix="/v1/operators", tags=["operators (admin)"], responses=ERROR_RESPONSES)


class OperatorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "acme"}]})

    name: str = text_field()


@router.post("", status_code=201, responses=CONFLICT_RESPONSE)
async def create_operator(
    body: OperatorCreate, service: ServiceDep, caller: CallerDep
) -> OperatorWithToken:
    """Create an operator; the answer holds its first token, shown this once."""
    return await service.create_operator(body.name, caller=caller)


@router.get("")
async def list_operators(service: ServiceDep, caller: CallerDep) -> Page[Operator]:
    return Page[Operator](data=await service.list_operators(caller=caller))


@router.post("/{operator_id}/tokens", status_code=201)
async def create_token(operator_id: str, service: ServiceDep, caller: CallerDep) -> TokenCreated:
    """A further token for the operator (id or name), shown this once."""
    return await service.create_token(operator_id, caller=caller)
