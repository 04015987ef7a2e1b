"""Celery tasks of notifications: one delivery per task, retried with growing delays; a sweep for lost ones."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from notifications.models import Delivery
from notifications.services import deliveries_resend, delivery_attempt


@shared_task(bind=True, name="notifications.deliver", ignore_result=True, max_retries=None)
def deliver(self, delivery_id: int) -> str | None:
    """Send one delivery. A failure is tried again after 30 s, 2 min, 10 min and 30 min (services.RETRY_DELAYS),
    then it is failed; the attempt count on the row, not this task's retry count, decides, so a delivery queued again
    by the sweep keeps its place. Nothing here can fail a run: runs only queue this task."""
    delivery = Delivery.objects.select_related("notification__owner", "channel").filter(pk=delivery_id).first()
    if delivery is None:
        return None
    retry_in = delivery_attempt(delivery=delivery)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
    return delivery.state


@shared_task(name="notifications.resend_lost", ignore_result=True)
def resend_lost() -> int:
    """Beat, every 5 minutes: deliveries still pending long after their next attempt was due are queued again."""
    return len(deliveries_resend(now=timezone.now()))
