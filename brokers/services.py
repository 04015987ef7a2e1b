"""Which broker serves a connection, and the calls that go through it on the user's behalf."""

from __future__ import annotations

from brokers.ibkr import IbkrBroker
from brokers.interface import Broker
from brokers.models import BrokerConnection, BrokerKind
from brokers.simulated import SimulatedBroker
from market.clock import MarketClock
from market.models import Symbol
from market.sources import BarSource
from market.symbol_search import SEARCH_LIMIT


def broker_for(
    connection: BrokerConnection | None,
    *,
    clock: MarketClock | None = None,
    bar_source: BarSource | None = None,
    bar_size: str | None = None,
) -> Broker:
    """The broker behind `connection`. None means IBKR from IBKR_GATEWAY_URL / IBKR_ACCOUNT_ID / IBKR_VERIFY_TLS.

    `clock` and `bar_source` matter to the simulated broker (fills are decided against bars by the market clock);
    `bar_size` is the bar series it fills new orders against (None: the finest series stored for the symbol)."""
    if connection is None or connection.kind == BrokerKind.IBKR:
        return IbkrBroker.for_connection(connection)
    return SimulatedBroker(connection, clock=clock, bar_source=bar_source, bar_size=bar_size)


def symbols_from_broker(connection: BrokerConnection, query: str) -> list[Symbol]:
    """IBKR's contract search through the user's connection (one gateway call, cached by the broker). The broker
    keeps every contract it finds in the Symbol table, so the answer is those rows. Raises the broker's typed
    errors (NotAuthenticated, RateLimited, Rejected, Transient)."""
    conids = [c.conid for c in broker_for(connection).search(query)[:SEARCH_LIMIT] if c.conid]
    found = Symbol.objects.in_bulk(conids, field_name="conid")
    return [found[conid] for conid in conids if conid in found]
