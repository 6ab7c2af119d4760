"""Looking after the database: ``purge`` keeps it small; ``backup`` and ``restore``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from .. import backup as backups
from ..config import parse_duration
from ..service import Service
from ..store.records import Purged
from ..terminal import line
from .common import Db, Json, err, run, settings, with_service
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
    can run meanwhile); RETENTION does it in each dispatcher, every tenth of the retention."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    config = settings(db)

    async def purging(service: Service) -> Purged:
        return await service.deliveries.purge(age)

    purged = with_service(config, purging)
    summary = asdict(purged)
    summary["longest_transaction"] = round(purged.longest_transaction, 3)
    show(summary, as_json)


def backup(
    path: Annotated[
        Path,
        typer.Argument(
            help="Archive to write (.tar.gz; replaced atomically), or a directory to put a "
            "dated one in.",
            show_default=False,
        ),
    ],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Write the database and its secret key to one private archive (safe while the service
    runs): without the key, a restored database has lost every API key."""
    config = settings(db)
    made = run(lambda: backups.backup(config, path))
    show(backups.describe(made), as_json)
    if made.secret_key == "environment":
        err.print(
            line(
                (
                    "The secret key is NOT in the archive: it comes from "
                    "HOTSPOT_WEBHOOKS_SECRET_KEY. Keep it separately, with the archive's backups: "
                    "without it every API key is lost.",
                    "yellow",
                )
            ),
            soft_wrap=True,
        )
    elif made.secret_key == "missing":
        err.print(
            line(
                (
                    "No secret key was found (no HOTSPOT_WEBHOOKS_SECRET_KEY, no key file): "
                    "the API keys in this archive cannot be decrypted without it.",
                    "yellow",
                )
            ),
            soft_wrap=True,
        )


def restore(
    path: Annotated[Path, typer.Argument(help="Archive written by `backup`.", show_default=False)],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing database (and key file); stop the service first."
        ),
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Put a backup's database and secret key back for the configured database, with the
    service stopped; `migrate` (or `serve`) then upgrades an older schema."""
    config = settings(db)
    restored = run(lambda: backups.restore(config, path, force=force))
    shown = backups.describe(restored)
    if not as_json:
        shown.pop("warning")  # printed below, where it stands out
    show(shown, as_json)
    if restored.warning:
        err.print(line(("warning:", "yellow"), " ", restored.warning), soft_wrap=True)
