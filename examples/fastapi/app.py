"""A hotspot-webhooks receiver in FastAPI: verify, keep each event once, answer at once.

    pip install fastapi uvicorn hotspot-webhooks   # or copy hotspot_webhooks/receiver.py
    API_KEY=... INBOX_DB=inbox.sqlite3 uvicorn app:app --port 8000

Callback URL: http://<host>:8000/hotspot-webhook. Answers 200 for a verified event, new or
already received (delivery is at-least-once, and anything but 200 is retried), 401 for a bad
signature. The slow work (CRM, mailing) is done later by whatever reads the inbox table.
"""

import asyncio
import json
import logging
import os
import sqlite3
from contextlib import closing

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from hotspot_webhooks.receiver import InvalidSignature, ReceivedEvent, parse

API_KEY = os.environ["API_KEY"]
INBOX_DB = os.environ.get("INBOX_DB", "inbox.sqlite3")

app = FastAPI()
log = logging.getLogger("uvicorn.error")


def open_inbox() -> sqlite3.Connection:
    """The inbox table is the queue and the deduplication both: the event id is its key."""
    db = sqlite3.connect(INBOX_DB, timeout=10)
    db.execute(
        "CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, type TEXT,"
        " location_id TEXT, payload TEXT NOT NULL,"
        " received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, processed_at TEXT)"
    )
    return db


def remember(event: ReceivedEvent) -> bool:
    """Store the event unless its id is there already; True if it is new.

    One INSERT, atomic in SQLite: two copies arriving at once store one, across restarts too.
    """
    with closing(open_inbox()) as db, db:
        inserted = db.execute(
            "INSERT INTO inbox (event_id, type, location_id, payload) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event.id, event.type, event.location_id, json.dumps(event.data)),
        )
        return inserted.rowcount == 1


@app.post("/hotspot-webhook", response_class=PlainTextResponse)
async def hotspot_webhook(request: Request) -> PlainTextResponse:
    try:
        # the raw bytes, as signed: not a model FastAPI parsed and would re-serialize
        event = parse(request.headers, await request.body(), api_key=API_KEY)
    except InvalidSignature:
        return PlainTextResponse("invalid signature", status_code=401)
    if not event.id:
        return PlainTextResponse("no webhook-id header", status_code=400)
    # sqlite3 blocks: off the event loop, so other deliveries are answered meanwhile
    if not await asyncio.to_thread(remember, event):  # webhook-id: the same on every retry
        log.info("already received %s %s", event.type, event.id)
        return PlainTextResponse("OK (already received)")
    log.info("received %s %s", event.type, event.id)
    return PlainTextResponse("OK")
