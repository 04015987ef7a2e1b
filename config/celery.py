"""The Celery app. Schedules live in the database (django-celery-beat), results too (django-celery-results)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="config.ping")
def ping(value: str = "pong") -> str:
    """A task with no side effects, used to check that a worker is consuming the broker."""
    return value
