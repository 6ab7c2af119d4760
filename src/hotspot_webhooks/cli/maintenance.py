"""Keeping the database small: ``purge``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from ..config import parse_duration
from .common import Db, Json, settings, with_service
from .output import show


def purge(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Age, e.g. 30d, 12h, 2w: finished deliveries, their attempts and events "
            "older than this are deleted (pending ones stay).",
        ),
    ],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Delete what is finished and older than a given age, in small transactions (the service
    can run meanwhile); RETENTION does it daily in each dispatcher."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    config = settings(db)
    purged = with_service(config, lambda service: service.purge(age))
    summary = asdict(purged)
    summary["longest_transaction"] = round(purged.longest_transaction, 3)
    show(summary, as_json)
