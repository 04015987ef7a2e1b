"""Order.transition_to follows the transitions map for every pair of statuses and writes a history row per change."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from orders.models import InvalidTransition, Order, OrderStatusChange
from orders.statuses import OPEN_STATUSES, ORDER_TRANSITIONS, TERMINAL_STATUSES, OrderStatus
from tests.factories import OrderFactory

PAIRS = list(itertools.product(OrderStatus.values, repeat=2))
ALLOWED = [pytest.param(a, b, id=f"{a}->{b}") for a, b in PAIRS if b in ORDER_TRANSITIONS[a]]
REFUSED = [pytest.param(a, b, id=f"{a}->{b}") for a, b in PAIRS if b not in ORDER_TRANSITIONS[a]]


def test_the_map_covers_every_status_and_names_only_real_ones():
    assert set(ORDER_TRANSITIONS) == set(OrderStatus.values)
    assert all(set(following) <= set(OrderStatus.values) for following in ORDER_TRANSITIONS.values())


@pytest.mark.parametrize(
    ("status", "terminal"),
    [(s, s in {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}) for s in OrderStatus.values],
    ids=OrderStatus.values,
)
def test_only_filled_cancelled_rejected_and_expired_are_terminal(status, terminal):
    assert (status in TERMINAL_STATUSES) is terminal
    assert not (status in OPEN_STATUSES and status in TERMINAL_STATUSES)


def test_unknown_moves_only_where_reconciliation_can_send_it():
    # "sent, reply lost": never back to PENDING or SUBMITTING, which would send the order a second time.
    assert not ORDER_TRANSITIONS[OrderStatus.UNKNOWN] & {OrderStatus.PENDING, OrderStatus.SUBMITTING}
    assert all(OrderStatus.PENDING not in following for following in ORDER_TRANSITIONS.values())


@pytest.mark.django_db
@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED)
def test_allowed_transition_is_saved_with_a_history_row(from_status, to_status):
    order = OrderFactory(status=from_status)
    at = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC)

    order.transition_to(to_status, reason="broker says so", at=at)

    stored = Order.objects.get(pk=order.pk)
    assert stored.status == order.status == to_status
    history = list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status", "reason"))
    assert history == [(from_status, to_status, "broker says so")]
    assert stored.closed_at == (at if to_status in TERMINAL_STATUSES else None)


@pytest.mark.django_db
@pytest.mark.parametrize(("from_status", "to_status"), REFUSED)
def test_refused_transition_changes_nothing(from_status, to_status):
    order = OrderFactory(status=from_status)

    with pytest.raises(InvalidTransition):
        order.transition_to(to_status)

    assert Order.objects.get(pk=order.pk).status == from_status
    assert order.status == from_status
    assert not OrderStatusChange.objects.filter(order=order).exists()


@pytest.mark.django_db
def test_second_of_two_racing_copies_is_refused():
    order = OrderFactory(status=OrderStatus.PENDING)
    sender = Order.objects.get(pk=order.pk)
    canceller = Order.objects.get(pk=order.pk)

    sender.transition_to(OrderStatus.SUBMITTING)
    with pytest.raises(InvalidTransition, match="changed under us"):
        canceller.transition_to(OrderStatus.CANCELLED)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.SUBMITTING
    history = list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status"))
    assert history == [(OrderStatus.PENDING, OrderStatus.SUBMITTING)]


@pytest.mark.django_db
def test_fields_given_with_a_transition_are_saved_with_it():
    order = OrderFactory(status=OrderStatus.SUBMITTED)

    order.transition_to(OrderStatus.PARTIALLY_FILLED, filled_quantity=4, broker_order_id="1234567")

    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.filled_quantity, stored.broker_order_id) == ("PARTIALLY_FILLED", 4, "1234567")


@pytest.mark.django_db
def test_a_life_from_pending_to_filled_leaves_its_whole_history_in_order():
    order = OrderFactory()
    path = [
        OrderStatus.SUBMITTING,
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]

    for status in path:
        order.transition_to(status)

    history = list(order.status_changes.values_list("from_status", "to_status"))
    assert history == list(zip([OrderStatus.PENDING, *path[:-1]], path, strict=True))
    assert order.is_terminal and not order.is_open
