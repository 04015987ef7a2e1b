"""What the trader is told, where, and whether it arrived.

A Notification is one event for one owner; it has one Delivery per channel it was routed to, each with its own
state (a Celery task sends it, with retries). A Channel is one Apprise URL a user listed on the settings page. Its
URL holds secrets (bot tokens, passwords): it is stored as entered and shown only as `masked`; nothing else in the
app prints it. Users who list no channel get the server's defaults (NOTIFY_URLS, NOTIFY_WEBHOOK_URL and mail to
their account address)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from notifications.querysets import ChannelQuerySet, DeliveryQuerySet, NotificationQuerySet


class NotificationKind(models.TextChoices):
    APPROVAL_NEEDED = "approval_needed", "Approval needed"
    ORDER_FILLED = "order_filled", "Order filled"
    ORDER_REJECTED = "order_rejected", "Order rejected"
    STOP_HIT = "stop_hit", "Stop hit"
    TARGET_HIT = "target_hit", "Target hit"
    DRIFT_FOUND = "drift_found", "Books drift from the broker"
    SESSION_DOWN = "session_down", "Broker session down"
    SESSION_LOGIN_NEEDED = "session_login_needed", "Broker login needed"
    SESSION_RESTORED = "session_restored", "Broker session restored"
    RUN_FAILED = "run_failed", "Run failed"
    RUN_SKIPPED = "run_skipped", "Run skipped"
    SPEND_CAP_REACHED = "spend_cap_reached", "LLM spend cap reached"
    PROTECTION_HALT = "protection_halt", "Protection halt"
    WORKER_SILENT = "worker_silent", "Worker silent"
    DAILY_SUMMARY = "daily_summary", "Daily summary"


def default_kinds() -> list[str]:
    """A new channel hears everything a trader must act on or would want to know; the user unticks the rest."""
    return list(NotificationKind.values)


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Channel(models.Model):
    """One Apprise URL of one user, with the kinds routed to it and how its deliveries have gone lately."""

    #: consecutive failed deliveries after which the settings page flags the channel
    FLAG_AFTER = 3

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=80, blank=True)
    url = models.TextField(help_text="The Apprise URL as entered. A secret: shown only masked.")
    masked = models.CharField(max_length=255, help_text="The URL with its secrets hidden, for display.")
    kinds = models.JSONField(default=default_kinds)
    enabled = models.BooleanField(default=True)
    failures = models.PositiveIntegerField(default=0, help_text="Deliveries failed in a row.")
    last_error = models.TextField(blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["owner", "created_at", "pk"]

    def __str__(self) -> str:
        return self.name or self.masked

    @property
    def label(self) -> str:
        return f"{self.name} ({self.masked})" if self.name else self.masked

    @property
    def flagged(self) -> bool:
        return self.failures >= self.FLAG_AFTER

    def routes(self, kind: str) -> bool:
        return self.enabled and kind in self.kinds


class Notification(models.Model):
    """One event told to one owner. `link` is absolute (SITE_URL) or empty; `data` is what a JSON webhook gets."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=24, choices=NotificationKind.choices)
    subject = models.CharField(max_length=255)
    body = models.TextField(blank=True)
    link = models.URLField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    # Soft links to what the notification is about (no reverse accessors: the upper layers own those rows).
    strategy = models.ForeignKey("trading.Strategy", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    order = models.ForeignKey("orders.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    execution = models.ForeignKey(
        "trading.StrategyExecution", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="notice_owner_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notice_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class Delivery(models.Model):
    """One notification to one channel. `destination` says which (masked); `default_key` names a server default
    (`webhook`, `mail`, or `url:<hash>` of a NOTIFY_URLS entry) when `channel` is empty."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries")
    default_key = models.CharField(max_length=80, blank=True)
    destination = models.CharField(max_length=255)
    state = models.CharField(max_length=8, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["notification", "pk"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=DeliveryState.values), name="delivery_state_valid"),
            models.CheckConstraint(
                condition=~Q(state=DeliveryState.SENT) | Q(sent_at__isnull=False), name="delivery_sent_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.destination}: {self.get_state_display()}"
