"""Talk to the IBKR Client Portal gateway from a shell.

    python manage.py ibkr status | accounts | summary | positions | orders
    python manage.py ibkr search AAPL
    python manage.py ibkr history 265598 --period 1y --bar 1d
    python manage.py ibkr order --side BUY --symbol AAPL --qty 5 --limit 170.25 [--tif DAY] --user alice

The gateway comes from `--connection` (a BrokerConnection id or name) or else IBKR_GATEWAY_URL, IBKR_ACCOUNT_ID and
IBKR_VERIFY_TLS. Log in on the gateway's own page first; this command never asks for a password. `order` goes
through the order service like every other order and prints the state it settled in.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokers.bars import bar_key
from brokers.ibkr import IbkrBroker, symbol_from_contract
from brokers.interface import BrokerError
from brokers.models import BrokerConnection, BrokerKind
from market.models import Symbol
from orders.services import OrderInputError
from portfolio.services import manual_order_place

HISTORY_BARS = {
    "1min",
    "2min",
    "3min",
    "5min",
    "10min",
    "15min",
    "30min",
    "1h",
    "2h",
    "3h",
    "4h",
    "8h",
    "1d",
    "1w",
    "1m",
}


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise CommandError(f"{text!r} is not a number") from exc
    if value <= 0:
        raise CommandError(f"{text} must be positive")
    return value


class Command(BaseCommand):
    help = "Query the IBKR gateway, or place an order through the order service."

    def add_arguments(self, parser: CommandParser) -> None:
        connection_help = "BrokerConnection id or name (default: IBKR_GATEWAY_URL)"
        parser.add_argument("--connection", help=connection_help)
        sub = parser.add_subparsers(dest="action", required=True)

        def action(name: str, help: str):
            # --connection is also accepted after the action (`ibkr status --connection NAME`); SUPPRESS keeps a
            # --connection given before the action from being overwritten by the action's own default.
            action_parser = sub.add_parser(name, help=help)
            action_parser.add_argument("--connection", default=argparse.SUPPRESS, help=connection_help)
            return action_parser

        action("status", help="session state of the gateway")
        action("accounts", help="accounts the session can trade")
        search = action("search", help="find contracts by symbol")
        search.add_argument("query")
        history = action("history", help="historical bars of a contract")
        history.add_argument("conid", type=int)
        history.add_argument("--period", default="1y", help="IBKR period, e.g. 5d, 6m (months), 1y")
        history.add_argument("--bar", default="1d", choices=sorted(HISTORY_BARS))
        action("orders", help="live orders of this brokerage session")
        action("positions", help="positions of the account")
        action("summary", help="cash, net liquidation and buying power")
        order = action("order", help="place an order through the order service")
        order.add_argument("--side", required=True, choices=["BUY", "SELL"], type=str.upper)
        order.add_argument("--symbol", required=True)
        order.add_argument("--qty", required=True)
        order.add_argument("--limit", help="limit price; without it the order is a market order")
        order.add_argument("--tif", default="DAY", choices=["DAY", "GTC", "IOC", "OPG"], type=str.upper)
        order.add_argument("--user", help="the order's owner (default: the connection's owner)")

    def handle(self, *args, **options) -> None:
        connection = self._connection(options.get("connection"))
        action = options["action"]
        try:
            broker = IbkrBroker.for_connection(connection)
            getattr(self, f"do_{action}")(broker, connection, options)
        except BrokerError as exc:
            raise CommandError(f"{type(exc).__name__}: {exc.message}") from exc

    def _connection(self, ref: str | None) -> BrokerConnection | None:
        if not ref:
            return None
        connections = BrokerConnection.objects.filter(kind=BrokerKind.IBKR)
        found = connections.filter(pk=int(ref)).first() if ref.isdigit() else connections.filter(name=ref).first()
        if found is None:
            raise CommandError(f"no IBKR connection {ref!r}")
        return found

    def _line(self, *parts) -> None:
        self.stdout.write("  ".join(str(p) for p in parts))

    def do_status(self, broker: IbkrBroker, connection, options) -> None:
        state = broker.session()
        self._line("gateway", broker.client.base_url)
        self._line("authenticated", state.authenticated)
        self._line("connected", state.connected)
        self._line("competing", state.competing)
        self._line("server", state.server or "-")
        if state.message:
            self._line("message", state.message)
        if not state.can_trade:
            self._line("log in on the gateway's own page:", broker.client.base_url.split("/v1/")[0] + "/")

    def do_accounts(self, broker: IbkrBroker, connection, options) -> None:
        body = broker.client.accounts()
        for account in body.get("accounts") or []:
            marker = "*" if account == body.get("selectedAccount") else " "
            self._line(marker, account, "paper" if body.get("isPaper") else "live")

    def do_search(self, broker: IbkrBroker, connection, options) -> None:
        for contract in broker.search(options["query"]):
            self._line(contract.conid, contract.symbol, contract.exchange, contract.name)

    def do_history(self, broker: IbkrBroker, connection, options) -> None:
        body = broker.client.history(options["conid"], period=options["period"], bar=options["bar"])
        factor = float(body.get("volumeFactor") or 1)  # see trading/broker/bars.py for the rule and its source
        size = "1d" if options["bar"] in {"1d", "1w", "1m"} else "1min"
        for point in body.get("data") or []:
            when = bar_key(int(point["t"]), size)
            stamp = f"{when:%Y-%m-%d}" if size == "1d" else f"{when:%Y-%m-%d %H:%M}Z"
            volume = int(float(point.get("v") or 0) * factor)
            self._line(stamp, point["o"], point["h"], point["l"], point["c"], volume)

    def do_orders(self, broker: IbkrBroker, connection, options) -> None:
        orders = broker.open_orders()
        if not orders:
            self._line("no orders in this brokerage session")
        for o in orders:
            self._line(
                o.broker_order_id, o.order_ref or "-", o.side, o.quantity, o.symbol, o.order_type, o.status,
                f"filled {o.filled_quantity}", o.average_price or "",
            )  # fmt: skip

    def do_positions(self, broker: IbkrBroker, connection, options) -> None:
        positions = broker.positions()
        if not positions:
            self._line("no positions")
        for p in positions:
            self._line(p.symbol, p.conid, p.quantity, f"avg {p.average_cost}", f"last {p.market_price}")

    def do_summary(self, broker: IbkrBroker, connection, options) -> None:
        summary = broker.account_summary()
        self._line("account", summary.account_id)
        self._line("cash", summary.cash, summary.currency)
        self._line("net liquidation", summary.net_liquidation, summary.currency)
        self._line("buying power", summary.buying_power, summary.currency)

    def do_order(self, broker: IbkrBroker, connection, options) -> None:
        owner = self._owner(options.get("user"), connection)
        quantity = _decimal(options["qty"])
        limit = _decimal(options["limit"]) if options.get("limit") else None
        symbol = self._symbol(broker, options["symbol"])
        try:
            order = manual_order_place(
                owner=owner,
                broker_connection=connection,
                symbol=symbol,
                side=options["side"],
                quantity=quantity,
                order_type="LMT" if limit else "MKT",
                limit_price=limit,
                tif=options["tif"],
                broker=broker,
            )
        except OrderInputError as exc:
            raise CommandError(str(exc)) from exc
        self._line("order", order.client_order_id, order.status, f"broker id {order.broker_order_id or '-'}")
        if order.status_reason:
            self._line("reason", order.status_reason)

    def _owner(self, username: str | None, connection):
        if username:
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user {username!r}")
            return user
        if connection is not None:
            return connection.owner
        raise CommandError("say whose order this is: --user USERNAME (or use --connection)")

    def _symbol(self, broker: IbkrBroker, ticker: str):
        known = Symbol.objects.by_ticker(ticker).filter(conid__isnull=False).first()
        return known or symbol_from_contract(broker.stock_conid(ticker))
