"""The Celery app. Schedules live in the database (django-celery-beat), results too (django-celery-results)."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Fixed schedules (each strategy's own schedule is its PeriodicTask row, written by trading.services). Each expires
# within its own interval, so a backlog of missed polls is dropped rather than run back to back.
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    "orders-track": {"task": "trading.orders_track", "schedule": 15.0, "options": {"expires": 15}},
    "stops-watch": {"task": "portfolio.stops_watch", "schedule": 60.0, "options": {"expires": 60}},
    "portfolio-snapshots": {"task": "portfolio.snapshots", "schedule": 900.0, "options": {"expires": 900}},
    "reconcile": {"task": "trading.reconcile", "schedule": 300.0, "options": {"expires": 300}},
    "ibkr-keepalive": {"task": "brokers.ibkr_keepalive", "schedule": 60.0, "options": {"expires": 55}},
    "notifications-resend-lost": {
        "task": "notifications.resend_lost",
        "schedule": 300.0,
        "options": {"expires": 300},
    },
    "daily-summaries": {
        "task": "trading.daily_summaries",
        "schedule": crontab(minute=30, hour=21, day_of_week="mon-fri"),
        "options": {"expires": 3600},
    },
    "prompt-performance": {
        "task": "signals_app.prompt_performance_refresh",
        "schedule": 600.0,
        "options": {"expires": 540},
    },
}


@app.task(name="config.ping")
def ping(value: str = "pong") -> str:
    """A task with no side effects, used to check that a worker is consuming the broker."""
    return value
