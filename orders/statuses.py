"""An order's statuses and which may follow which: shared by the model's state machine and its named reads."""

from django.db import models


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", "Pending (saved, not sent)"
    SUBMITTING = "SUBMITTING", "Submitting"
    SUBMITTED = "SUBMITTED", "Submitted"
    PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
    FILLED = "FILLED", "Filled"
    CANCEL_REQUESTED = "CANCEL_REQUESTED", "Cancel requested"
    CANCELLED = "CANCELLED", "Cancelled"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"
    UNKNOWN = "UNKNOWN", "Unknown (reply lost)"


S = OrderStatus
# Which status may follow which. UNKNOWN means "sent, reply lost": only reconciliation moves it on, to whatever the
# broker says the order is.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.SUBMITTING, S.REJECTED, S.CANCELLED}),
    S.SUBMITTING: frozenset({S.SUBMITTED, S.REJECTED, S.UNKNOWN, S.PARTIALLY_FILLED, S.FILLED}),
    S.SUBMITTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCEL_REQUESTED, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCEL_REQUESTED, S.CANCELLED, S.EXPIRED}),
    S.CANCEL_REQUESTED: frozenset({S.CANCELLED, S.FILLED, S.PARTIALLY_FILLED, S.EXPIRED}),
    S.UNKNOWN: frozenset({S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
TERMINAL_STATUSES = frozenset(status for status, following in ORDER_TRANSITIONS.items() if not following)
OPEN_STATUSES = frozenset({S.SUBMITTED, S.PARTIALLY_FILLED, S.CANCEL_REQUESTED, S.UNKNOWN})
