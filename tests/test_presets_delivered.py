"""Every preset, made through the service as an operator makes it (``preset`` and its answers,
``preset_values``), delivered by the dispatcher for every event type it fits: rendered in the
template sandbox, signed, authorized as the preset says, sent over real HTTP to the provider's
stand-in (``tests/standins``), which enforces the provider's documented request, and counted as
delivered by the preset's own success statuses. On SQLite and PostgreSQL.

The stand-in runs on 127.0.0.1, so the webhook's callback URL is pointed at it after creation;
the stand-in judges the request as one to the provider's host (``StandIn.serves_as``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from hotspot_webhooks.catalog import EVENT_TYPES
from hotspot_webhooks.delivery.dispatcher import Dispatcher
from hotspot_webhooks.integrations.presets import PRESETS
from hotspot_webhooks.models import WebhookOptions
from hotspot_webhooks.service import EmitRequest, Service
from tests.test_presets import STANDINS

BACKENDS = ("sqlite", "postgresql")


@pytest.mark.parametrize("name", sorted(PRESETS))
async def test_a_preset_webhook_delivers_every_type_it_fits_to_its_stand_in(
    service: Service, location: str, name: str
) -> None:
    preset = PRESETS[name]
    make_standin, answers = STANDINS[name]
    async with make_standin() as standin:
        webhook = await service.webhooks.create(
            location_ids=[location],
            event_types=list(preset.event_types),
            options=WebhookOptions(preset=name, preset_values=answers(standin)),
        )
        assert webhook.preset == name and webhook.template is not None
        assert webhook.api_key not in str(webhook.auth)
        standin.serves_as = urlsplit(webhook.callback_url).netloc
        await service.webhooks.update(
            webhook.id, callback_url=standin.url_for(webhook.callback_url)
        )
        await service.events.emit_many(
            [
                EmitRequest(
                    event_type, location, dict(EVENT_TYPES[event_type].sample), id=f"evt-{n}"
                )
                for n, event_type in enumerate(preset.event_types)
            ]
        )
        dispatcher = Dispatcher(service.store.queue, service.settings, service.cipher)
        try:
            await dispatcher.run_pass()
        finally:
            await dispatcher.close()

        deliveries = (await service.deliveries.get_all(webhook_id=webhook.id)).data
        assert len(deliveries) == len(preset.event_types)
        assert {d.status for d in deliveries} == {"succeeded"}, [
            (d.event_type, d.last_status, d.last_error) for d in deliveries
        ]
        if name == "hubspot":  # one contact per guest: a second event for one answers 409
            emails = {EVENT_TYPES[t].sample["email"] for t in preset.event_types}
            assert len(standin.accepted) == len(emails)
        else:
            assert len(standin.accepted) == len(preset.event_types)
