from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.db import models
from django.db.models import F, Sum, Value
from django.db.models.functions import Coalesce

from orders.statuses import OPEN_STATUSES

if TYPE_CHECKING:
    from brokers.models import BrokerConnection
    from orders.models import Order  # noqa: F401  (the string in the base class names it)


class OrderQuerySet(models.QuerySet["Order"]):
    def for_owner(self, user: User) -> OrderQuerySet:
        return self.filter(owner=user)

    def open(self) -> OrderQuerySet:
        return self.filter(status__in=OPEN_STATUSES)

    def entries(self) -> OrderQuerySet:
        return self.filter(leg="entry")

    def for_connection(self, connection: BrokerConnection | None) -> OrderQuerySet:
        """Orders sent through `connection`; None means the IBKR gateway from the environment."""
        if connection is None:
            return self.filter(broker_connection__isnull=True)
        return self.filter(broker_connection=connection)

    def by_client_order_id(self, client_order_id: str) -> OrderQuerySet:
        return self.filter(client_order_id=client_order_id)

    def unsettled(self) -> OrderQuerySet:
        """Sent (or being sent) with no answer recorded: reconciliation looks them up by client order id."""
        return self.filter(status__in=["SUBMITTING", "UNKNOWN"])

    def working(self) -> OrderQuerySet:
        """Live at the broker as far as we know: their status and fills are polled."""
        return self.filter(status__in=["SUBMITTED", "PARTIALLY_FILLED", "CANCEL_REQUESTED"])

    def parents(self) -> OrderQuerySet:
        return self.filter(parent__isnull=True)

    def fills_unrecorded(self, *, since: dt.datetime) -> OrderQuerySet:
        """Orders the broker says filled more of than their recorded executions (Trade rows) add up to: a pass that
        took the broker's status but not the execution behind it (the execution list was read a moment before the
        fill, or the pass died in between). Tracking reads executions again until they agree."""
        return (
            self.filter(filled_quantity__gt=0, updated_at__gte=since)
            .annotate(recorded=Coalesce(Sum("trades__quantity"), Value(Decimal(0))))
            .filter(filled_quantity__gt=F("recorded"))
        )
