"""A process that dies between the order POST and recording the reply, then the service called again: the order is
found at the broker by its client order id and posted exactly once."""

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection as db_connection

from orders.models import Order
from orders.services import order_place
from orders.statuses import OrderStatus
from tests.brokers.conftest import make_ibkr_broker
from tests.brokers.gateway import AAPL, ACCOUNT, FakeGateway, LoopbackGateway
from tests.factories import BrokerConnectionFactory, SymbolFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 1.5

PLACE_ORDER = """
import sys
from decimal import Decimal
import django
django.setup()
from market.models import Symbol
from orders.services import order_place
from trading.models import BrokerConnection
connection = BrokerConnection.objects.get(pk=int(sys.argv[1]))
order_place(owner=connection.owner, broker_connection=connection, symbol=Symbol.objects.get(pk=int(sys.argv[2])),
            side="BUY", quantity=Decimal("10"), order_type="LMT", limit_price=Decimal("99.50"),
            client_order_id="killed-after-post")
"""


def _database_url() -> str:
    settings = db_connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_process_killed_between_post_and_settling_then_called_again_posts_once():
    fake = FakeGateway(slow_interval=0.3)
    fake.stall_next_order = True  # the order lands; its reply never comes back
    with LoopbackGateway(fake) as server:
        owner = UserFactory()
        aapl = SymbolFactory(symbol="AAPL", exchange="NASDAQ", conid=AAPL)
        connection = BrokerConnectionFactory(
            owner=owner, ibkr=True, gateway_url=server.url, account_id=ACCOUNT, verify_tls="false"
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": _database_url(),
            "IBKR_TIMEOUT_SECONDS": str(TIMEOUT),
        }
        sender = subprocess.Popen(
            [sys.executable, "-c", PLACE_ORDER, str(connection.pk), str(aapl.pk)], cwd=ROOT, env=env
        )
        try:
            assert fake.stalled.wait(30), "the order POST never reached the gateway"
            sender.send_signal(signal.SIGKILL)
        finally:
            sender.wait(10)
        stranded = Order.objects.get(client_order_id="killed-after-post")
        assert stranded.status == OrderStatus.SUBMITTING

        again = order_place(
            owner=owner,
            broker_connection=connection,
            symbol=aapl,
            side="BUY",
            quantity=Decimal("10"),
            order_type="LMT",
            limit_price=Decimal("99.50"),
            client_order_id="killed-after-post",
            broker=make_ibkr_broker(connection, timeout=TIMEOUT),
        )

    assert again.pk == stranded.pk
    assert again.status == OrderStatus.SUBMITTED
    assert again.broker_order_id == str(fake.by_ref("killed-after-post")["orderId"])
    assert fake.order_posts() == 1
    assert list(again.status_changes.values_list("to_status", flat=True)) == ["SUBMITTING", "UNKNOWN", "SUBMITTED"]
    assert fake.violations == []
