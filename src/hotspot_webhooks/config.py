"""Settings in one typed object: ``HOTSPOT_WEBHOOKS_*`` environment, a ``.env`` file, then flags.

CLI flags override the environment by passing keyword arguments to ``Settings(...)``.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./data/hotspot-webhooks.db"
DEFAULT_DB_TIMEOUT = 10.0  # seconds; see Settings.db_timeout


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOTSPOT_WEBHOOKS_", env_file=".env", extra="ignore", validate_default=True
    )

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLite file or PostgreSQL URL")
    db_timeout: float = Field(
        DEFAULT_DB_TIMEOUT,
        gt=0,
        le=300,
        description="PostgreSQL: seconds the database has to connect, to answer each statement "
        "and to give a pooled connection; past them the API answers 503 and workers retry",
    )
    interval: float = Field(60.0, gt=0, description="seconds between dispatcher passes")
    retry_policy: Literal["backoff", "next-pass"] = "backoff"
    max_retries: int = Field(20, ge=0, le=100, description="retries after the first attempt")
    max_retry_delay: float = Field(4 * 3600, gt=0, description="cap on one backoff wait (s)")
    timeout: float = Field(15.0, gt=0, le=300, description="total seconds for one attempt")
    success_statuses: str = Field("200", description='"200", "2xx" or a list like "200,204"')
    concurrency: int = Field(200, ge=1, le=10_000, description="attempts in flight at once")
    per_host_concurrency: int = Field(
        50, ge=1, le=10_000, description="attempts in flight to one endpoint (receiver host)"
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="deliveries claimed per query")
    lease: float = Field(
        300.0, gt=0, description="backstop lease (s) for holders that do not heartbeat"
    )
    low_latency: bool = Field(False, description="send new events at once, not at the next pass")
    heartbeat: float = Field(5.0, gt=0, description="seconds between a worker's heartbeats")
    worker_timeout: float = Field(
        30.0, gt=0, description="a worker silent this long is dead; its work is handed back"
    )
    circuit_threshold: int = Field(
        5, ge=1, description="unreachable attempts in a row that open an endpoint's circuit"
    )
    circuit_wait: float = Field(10.0, gt=0, description="seconds before the first probe")
    circuit_max_wait: float = Field(600.0, gt=0, description="cap on the wait between probes")
    allow_private_targets: bool = Field(False, description="allow loopback/private receivers")
    secret_key: str | None = Field(None, description="key that encrypts API keys at rest")
    admin_token: str | None = None
    response_excerpt_bytes: int = Field(4096, ge=0, le=1 << 20)
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="largest request body")
    max_batch_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="largest body of POST /v1/events/batch"
    )
    body_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds a client has to send a request's whole body"
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    forwarded_allow_ips: str = Field(
        "",
        description="reverse proxies (addresses or networks, comma-separated, or *) whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed; none by default",
    )
    retention: timedelta | None = Field(
        None,
        description="purge finished deliveries, their attempts and events older than this, "
        "in each dispatcher every tenth of it, 30 s to 1 h apart (e.g. 30d; off by default)",
    )

    log_format: Literal["text", "json"] = Field(
        "text", description="text lines, or JSON lines (one object per line) for a collector"
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="worker: serve Prometheus /metrics on HOST:this port (off by default; "
        "the API serves /metrics on its own port)",
    )
    metrics_token: str | None = Field(
        None, description="if set, /metrics asks for Authorization: Bearer <this token>"
    )

    rotation_grace: timedelta = Field(
        timedelta(hours=24),
        description="after rotate-key, the previous key keeps signing (a second "
        "webhook-signature entry) for this long, then is erased (e.g. 24h; 0 to drop it at once)",
    )

    @model_validator(mode="after")
    def _check_liveness(self) -> Settings:
        if self.worker_timeout < 2 * self.heartbeat:
            raise ValueError(
                f"worker_timeout ({self.worker_timeout:g} s) must be at least twice the "
                f"heartbeat ({self.heartbeat:g} s), or a live worker could be taken for dead"
            )
        return self

    @field_validator("retention", mode="before")
    @classmethod
    def _parse_retention(cls, value: object) -> object:
        if isinstance(value, str):
            return None if value.strip().lower() in ("", "off", "0") else parse_duration(value)
        return value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _parse_metrics_port(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "off"):
            return None
        return value

    @field_validator("rotation_grace", mode="before")
    @classmethod
    def _parse_rotation_grace(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().lower()
            return timedelta(0) if text in ("0", "off") else parse_duration(value)
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        trusted_proxies(value)
        return value

    @field_validator("success_statuses")
    @classmethod
    def _check_statuses(cls, value: str) -> str:
        parse_success_statuses(value)
        return value

    def is_success(self, status: int) -> bool:
        return status in parse_success_statuses(self.success_statuses)


@functools.lru_cache(maxsize=1024)  # the setting's, and each webhook's own (bounded: input)
def parse_success_statuses(value: str) -> frozenset[int]:
    """``"200"`` → {200}; ``"2xx"`` → 200..299; ``"200,204"`` → {200, 204}."""
    statuses: set[int] = set()
    for part in (p.strip().lower() for p in value.split(",")):
        if len(part) == 3 and part.endswith("xx") and part[0] in "12345":
            base = int(part[0]) * 100
            statuses.update(range(base, base + 100))
        elif part.isdigit() and 100 <= int(part) <= 599:
            statuses.add(int(part))
        else:
            raise ValueError(f"{part!r} is not a status code (like 200) or class (like 2xx)")
    return frozenset(statuses)


def trusted_proxies(value: str) -> list[str]:
    """``FORWARDED_ALLOW_IPS`` as a list: ``""`` → none, ``"*"`` → any peer, else addresses
    and networks (``"127.0.0.1, 10.0.0.0/8"``). Anything else is refused rather than passed
    to uvicorn, which would take a typo for a name that never matches."""
    entries = [entry.strip() for entry in value.split(",")] if value.strip() else []
    if entries == ["*"]:
        return entries
    for entry in entries:
        try:
            if "/" in entry:
                ipaddress.ip_network(entry)
            else:
                ipaddress.ip_address(entry)
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network: write addresses or networks of "
                "the reverse proxies, comma-separated (e.g. 127.0.0.1,10.0.0.0/8), or * for any"
            ) from None
    return entries


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"``: a positive whole number and a
    unit (what operators write for retention)."""
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) == 0:
        raise ValueError(
            f"{text!r} is not a duration: write a positive whole number and a unit, s, m, h, "
            "d or w (e.g. 30d)"
        )
    return timedelta(seconds=int(number) * _UNITS[unit])
