"""One delivery attempt: sign → send → decide. The one path every attempt takes.

A dispatcher's pass, a test send (``webhooks test``) and the recording of a lease that a dead
worker left behind all make their attempts here, judged by one policy: the retry schedule, the
success statuses and the state machine of ``outcome.decide``. What to do with the decision
(record it in a batch, or at once) is the caller's.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from .. import metrics
from ..config import Settings, parse_success_statuses
from ..keys import KeyCipher
from ..signing import DeliveryRequest, Signer, delivery_headers
from ..states import DeliveryStatus
from ..store.queue import Queue
from ..store.records import ClaimedDelivery, ExpiredLease, Outcome
from .oauth2 import OAuth2Error
from .outcome import AttemptResult, Decision, decide
from .retry import RetryPolicy
from .sender import Sender
from .shaping import NotReady, Shaping, Unsendable, recorded

log = logging.getLogger(__name__)
SIGNER_CACHE_SIZE = 10_000  # webhook keys kept decrypted and keyed, per process


class Attempts:
    """Makes and judges attempts under one configuration; holds the HTTP client and the
    keyed signers, so open one per process side and ``close`` it."""

    def __init__(
        self,
        settings: Settings,
        cipher: KeyCipher,
        on_wire: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = RetryPolicy(
            kind=settings.retry_policy,
            interval=settings.interval,
            max_retries=settings.max_retries,
            max_delay=settings.max_retry_delay,
        )
        self.sender = Sender(
            timeout=settings.timeout,
            allow_private=settings.allow_private_targets,
            excerpt_bytes=settings.response_excerpt_bytes,
            on_wire=on_wire,
        )
        self._cipher = cipher
        # decrypting and keying an HMAC cost more than signing a body: once per key
        self.signer = functools.lru_cache(maxsize=SIGNER_CACHE_SIZE)(self._new_signer)
        self._shaping: Shaping | None = None  # opened by the first webhook that needs it

    def _new_signer(self, api_key_encrypted: str) -> Signer:
        return Signer(self._cipher.decrypt(api_key_encrypted))

    def signers(self, claimed: ClaimedDelivery) -> list[Signer]:
        """The current key's signer, then, during a rotation's grace, the previous key's."""
        current = self.signer(claimed.api_key_encrypted)
        if claimed.previous_api_key_encrypted is None:
            return [current]
        return [current, self.signer(claimed.previous_api_key_encrypted)]

    async def close(self) -> None:
        await self.sender.close()
        if self._shaping is not None:
            await self._shaping.close()

    async def make(self, claimed: ClaimedDelivery, fence_run: int | None = None) -> Decision | None:
        """Sign and send ``claimed`` now, and decide what it became; None if it was not sent
        because the lease fence no longer held ``fence_run`` (``fence.py``)."""
        if (
            claimed.template_json is not None
            or claimed.secrets_sealed is not None
            or claimed.success_statuses is not None
        ):
            return await self._make_shaped(claimed, fence_run)
        headers: dict[str, str] = {}
        try:
            headers = signed_headers(claimed, self.signers(claimed))
            result = await self.sender.send(
                claimed.callback_url, claimed.body, headers, claimed.id, fence_run
            )
        except Exception as exc:
            result = _internal_error(claimed, exc)
        if not result.sent:
            return None
        return self._decide(claimed.id, claimed.attempt_number, result, headers)

    async def _make_shaped(
        self, claimed: ClaimedDelivery, fence_run: int | None
    ) -> Decision | None:
        """``make`` for a webhook with a template, headers or auth of its own (SPEC §9): the
        body it renders is what is signed and sent; its own header values and its
        ``Authorization`` are recorded as ``"[redacted]"``."""
        if self._shaping is None:
            self._shaping = Shaping(self._cipher, allow_private=self.settings.allow_private_targets)
        shaping = self._shaping
        recorded_headers: dict[str, str] = {}
        try:
            shaped = await shaping.request(claimed)
            headers = signed_headers(claimed, self.signers(claimed), shaped.body)
            headers["Content-Type"] = shaped.content_type
            headers.update(shaped.headers)

            async def send(authorization: dict[str, str]) -> AttemptResult:
                nonlocal recorded_headers
                sent = headers | authorization
                recorded_headers = recorded(sent, shaped)
                return await self.sender.send(
                    claimed.callback_url, shaped.body, sent, claimed.id, fence_run
                )

            result = await shaping.send(shaped, send, lambda r: r.sent and r.status == 401)
        except Unsendable as exc:
            result = _not_sent(exc.message, permanent=True)
        except (OAuth2Error, NotReady) as exc:
            result = _not_sent(exc.message, permanent=False)
        except Exception as exc:
            result = _internal_error(claimed, exc)
        if not result.sent:
            return None
        is_success = None
        if claimed.success_statuses is not None:
            is_success = parse_success_statuses(claimed.success_statuses).__contains__
        return self._decide(
            claimed.id, claimed.attempt_number, result, recorded_headers, is_success
        )

    async def make_and_record(self, queue: Queue, claimed: ClaimedDelivery, owner: str) -> None:
        """``make``, then record the attempt at once (a test send: nothing to batch with)."""
        decision = await self.make(claimed)
        if decision is None:  # unfenced: always sent
            return
        disable = webhooks_to_disable(claimed, decision)
        now = datetime.now(UTC)
        await queue.record(owner, [decision.outcome], now=now, disable_webhooks=disable)
        log_disabled(disable)

    def lost(self, lease: ExpiredLease) -> Decision:
        """The attempt of a worker that stopped while its request was on the wire, before it
        recorded the answer: the receiver may or may not have it, so it counts against the
        retries as of unknown outcome."""
        result = AttemptResult(
            started_at=lease.started_at,
            duration_ms=0,
            status=None,
            response_excerpt=None,
            error=f"outcome unknown: worker {lease.owner} stopped while this request was on "
            "the wire, before recording the answer (the receiver may or may not have it)",
        )
        return self._decide(lease.delivery_id, lease.attempt_count + 1, result, {})

    def _decide(
        self,
        delivery_id: str,
        number: int,
        result: AttemptResult,
        headers: dict[str, str],
        is_success: Callable[[int], bool] | None = None,
    ) -> Decision:
        return decide(
            delivery_id=delivery_id,
            attempt_number=number,
            result=storable(result),
            request_headers=headers,
            policy=self.policy,
            is_success=is_success or self.settings.is_success,
            now=datetime.now(UTC),
        )


def storable(result: AttemptResult) -> AttemptResult:
    """``result`` with the receiver's text made storable: a NUL (which a receiver may answer,
    and PostgreSQL cannot store in text) becomes U+FFFD, as undecodable bytes already do."""
    excerpt, error = result.response_excerpt, result.error
    if (excerpt is None or "\x00" not in excerpt) and (error is None or "\x00" not in error):
        return result
    return dataclasses.replace(
        result,
        response_excerpt=None if excerpt is None else excerpt.replace("\x00", "\ufffd"),
        error=None if error is None else error.replace("\x00", "\ufffd"),
    )


def signed_headers(
    claimed: ClaimedDelivery, signers: Sequence[Signer], body: bytes | None = None
) -> dict[str, str]:
    """The headers of this attempt of ``claimed``, signed now (the current key first), over
    ``body`` (a template's output) or the event's stored bytes."""
    return delivery_headers(
        DeliveryRequest(
            claimed.event_id,
            claimed.event_type,
            claimed.location_id,
            claimed.id,
            claimed.attempt_number,
        ),
        claimed.body if body is None else body,
        signers,
        int(time.time()),
    )


def webhooks_to_disable(claimed: ClaimedDelivery, decision: Decision) -> dict[str, str]:
    """Webhook id → reason, for ``Queue.record``: the webhook a 410 just disabled."""
    return {claimed.webhook_id: decision.disable_reason} if decision.disable_reason else {}


def log_disabled(disabled: dict[str, str]) -> None:
    """Say, once it is written, that a receiver's 410 disabled its webhook: the operator has
    to act (re-enable it, or delete it) before it gets deliveries again."""
    for webhook_id, reason in disabled.items():
        metrics.DISABLED_BY_RECEIVER.inc()
        log.warning(
            "webhook %s disabled: %s; it gets no deliveries until it is enabled again",
            webhook_id, reason, extra={"webhook_id": webhook_id},
        )  # fmt: skip


def unsent_webhook_disabled(claimed: ClaimedDelivery) -> Outcome:
    """A delivery whose webhook was disabled fails unsent; `recover` can re-queue it."""
    return Outcome(
        delivery_id=claimed.id,
        status=DeliveryStatus.FAILED,
        attempt_count=claimed.attempt_number - 1,
        next_attempt_at=None,
        last_status=None,
        last_error="webhook is disabled; not sent",
        delivered_at=None,
        attempt=None,
    )


def _not_sent(error: str, *, permanent: bool) -> AttemptResult:
    """An attempt that could not go out: its request could not be made (a template that
    fails on this event: ``permanent``, no retry), or not yet (a token endpoint failed)."""
    return AttemptResult(
        started_at=datetime.now(UTC),
        duration_ms=0,
        status=None,
        response_excerpt=None,
        error=error,
        permanent=permanent,
    )


def _internal_error(claimed: ClaimedDelivery, exc: Exception) -> AttemptResult:
    """A bug while sending, counted as a failed attempt: a delivery that keeps failing this
    way still ends after its retries instead of looping unrecorded."""
    log.exception("delivery %s: internal error", claimed.id)
    return AttemptResult(
        started_at=datetime.now(UTC),
        duration_ms=0,
        status=None,
        response_excerpt=None,
        error=f"internal error: {type(exc).__name__}: {exc}",
    )
