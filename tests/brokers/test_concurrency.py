"""Two callers with the same intent at the same moment: one Order row, one order at the broker."""

import threading
from decimal import Decimal

import pytest
from django.db import connection as db_connection

from orders.models import Order
from orders.services import order_place
from orders.statuses import OrderStatus
from tests.brokers.conftest import make_ibkr_broker
from tests.factories import StrategyFactory, TradingSignalFactory


@pytest.mark.django_db(transaction=True)
def test_two_callers_racing_on_the_same_signal_send_one_order(ibkr_http, gateway, ibkr_connection, aapl, clock):
    strategy = StrategyFactory(owner=ibkr_connection.owner, symbol=aapl, broker_connection=ibkr_connection)
    signal = TradingSignalFactory(strategy=strategy)
    start = threading.Barrier(2)
    results, errors = [], []

    def caller():
        try:
            start.wait(5)
            results.append(
                order_place(
                    owner=ibkr_connection.owner,
                    broker_connection=ibkr_connection,
                    symbol=aapl,
                    side="BUY",
                    quantity=Decimal("10"),
                    order_type="LMT",
                    limit_price=Decimal("99.50"),
                    strategy=strategy,
                    signal=signal,
                    clock=clock,
                    broker=make_ibkr_broker(ibkr_connection),
                )
            )
        except Exception as exc:  # the test reports whatever a thread raised
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert len({order.pk for order in results}) == 1
    assert Order.objects.get().status == OrderStatus.SUBMITTED
    assert gateway.order_posts() == 1
