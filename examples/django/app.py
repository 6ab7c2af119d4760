"""A hotspot-webhooks receiver as a one-file Django project: verify, keep each event once,
answer at once.

    pip install django hotspot-webhooks   # or copy hotspot_webhooks/receiver.py: stdlib only
    API_KEY=... INBOX_DB=inbox.sqlite3 python app.py runserver 8000
    API_KEY=... gunicorn app   # in production: `application` below is the WSGI app

Callback URL: http://<host>:8000/hotspot-webhook. In a project of your own, copy the view and
its URL; the inbox can be any database Django knows (the SQL below runs on SQLite and
PostgreSQL alike). Answers 200 for a verified event, new or already received (delivery is
at-least-once, and anything but 200 is retried), 401 for a bad signature.
"""

import json
import logging
import os
import sys

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "only-for-this-example"),
    ALLOWED_HOSTS=os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(","),
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("INBOX_DB", "inbox.sqlite3"),
            "OPTIONS": {"timeout": 10},
        }
    },
    LOGGING={
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"receiver": {"handlers": ["console"], "level": "INFO"}},
    },
)

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after settings)
from django.db import connection, transaction  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402

from hotspot_webhooks.receiver import InvalidSignature, ReceivedEvent, parse  # noqa: E402

API_KEY = os.environ["API_KEY"]
log = logging.getLogger("receiver")


def create_inbox() -> None:
    """The inbox table is the queue and the deduplication both: the event id is its key.
    (In a project of your own: a model with ``event_id`` as primary key, and a migration.)"""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, type TEXT,"
            " location_id TEXT, payload TEXT NOT NULL,"
            " received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, processed_at TEXT)"
        )


def remember(event: ReceivedEvent) -> bool:
    """Store the event unless its id is there already; True if it is new.

    One INSERT, atomic in the database: two copies arriving at once store one, across restarts.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO inbox (event_id, type, location_id, payload) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            [event.id, event.type, event.location_id, json.dumps(event.data)],
        )
        return cursor.rowcount == 1


@csrf_exempt  # the sender has no CSRF token: the signature is what authenticates it
@require_POST
def hotspot_webhook(request: HttpRequest) -> HttpResponse:
    try:
        # the raw bytes, as signed. (Django's runserver drops headers with underscores, so the
        # signature comes from X-Hotspotsystem-Hmac-Sha256, which parse() reads.)
        event = parse(request.headers, request.body, api_key=API_KEY)
    except InvalidSignature:
        return HttpResponse("invalid signature", status=401)
    if not event.id:
        return HttpResponse("no webhook-id header", status=400)
    if not remember(event):  # webhook-id is the event id, the same on every retry
        log.info("already received %s %s", event.type, event.id)
        return HttpResponse("OK (already received)")
    log.info("received %s %s", event.type, event.id)
    return HttpResponse("OK")


urlpatterns = [path("hotspot-webhook", hotspot_webhook)]

application = get_wsgi_application()
create_inbox()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
