"""``/v1/integrations``: the built-in presets (SPEC §9), what each sends, to which event types,
with which auth, and the fields a webhook made from it asks for. Public, like the catalog: it
holds nothing but what the program ships."""

from __future__ import annotations

from fastapi import APIRouter

from ..models import IntegrationInfo, Page
from .auth import ServiceDep
from .json_body import StrictJSONRoute

router = APIRouter(prefix="/v1/integrations", tags=["integrations"], route_class=StrictJSONRoute)


@router.get("")
async def list_integrations(service: ServiceDep) -> Page[IntegrationInfo]:
    """Slack, Discord, Teams, Mailchimp, HubSpot, Google Sheets and more: each a template and
    the auth it needs, for the event types it fits."""
    return Page[IntegrationInfo](data=await service.integrations.get_all())
