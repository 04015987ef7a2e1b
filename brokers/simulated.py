"""The simulated broker: the Broker interface over its own ledger (simbroker.models), filling against bars.

Time is the market clock's, bars come from the BarSource, so paper trading, playback and replays fill the same way:
- market orders at the open of the next bar after they were placed;
- limits when a bar trades through them, at the limit or better (a bar that opens through the limit fills at the
  open: gap-aware);
- stops when a bar touches them, at the stop or at the open when the bar gaps through it;
- brackets: the exits wake up after the entry fills and are one OCA group (one filling cancels the other; a bar
  that touches both fills the stop, the cautious reading);
- commission per share with a minimum; a cash account (no margin, no shorting);
- DAY orders expire at the close of their session by the clock. With daily (or longer) bars a DAY order gets the
  next bar only: a daily bar cannot say whether the rest of today traded through the price.

Fills are worked out lazily, at the start of every call that reads the ledger, under a row lock on the account.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from django.db import IntegrityError, transaction

from brokers.interface import (
    AccountSummary,
    BracketRequest,
    Broker,
    BrokerOrder,
    BrokerPosition,
    Contract,
    DuplicateClientOrderId,
    Execution,
    OrderRequest,
    Placement,
    Rejected,
    SessionState,
    Transient,
)
from brokers.models import BrokerConnection, SimAccount, SimFill, SimOrder, SimOrderStatus, SimPosition
from market import sources
from market.calendar import day_order_session, session_close, session_open
from market.clock import MarketClock, WallClock
from market.models import Bar, BarSize, Symbol
from market.sources import BarSource, BarSourceError

CENT = Decimal("0.01")
WORKING = SimOrderStatus.WORKING


def _price(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.000001"))


class SimulatedBroker(Broker):
    conversation_seconds = 10.0

    def __init__(
        self,
        connection: BrokerConnection,
        *,
        clock: MarketClock | None = None,
        bar_source: BarSource | None = None,
        bar_size: str | None = None,
    ) -> None:
        self.connection = connection
        self.clock = clock or WallClock()
        self._bar_source = bar_source
        self.bar_size = bar_size
        self.account_key = f"sim:{connection.pk}"

    # --- plumbing --------------------------------------------------------------------------------------------------

    @property
    def bar_source(self) -> BarSource:
        if self._bar_source is None:
            stored = getattr(sources, "StoredBarSource", None)
            if stored is None:
                raise Transient("the simulated broker needs a bar source")
            self._bar_source = stored()
        return self._bar_source

    def _account(self) -> SimAccount:
        account = SimAccount.objects.filter(connection=self.connection).first()
        if account is None:
            try:
                with transaction.atomic():
                    account = SimAccount.objects.create(connection=self.connection, cash=self.connection.starting_cash)
            except IntegrityError:
                account = SimAccount.objects.get(connection=self.connection)
        return account

    def _symbol(self, order: OrderRequest) -> Symbol:
        symbols = Symbol.objects.all()
        if order.symbol_id:
            found = symbols.filter(pk=order.symbol_id).first()
        elif order.conid:
            found = symbols.filter(conid=order.conid).first()
        else:
            found = symbols.by_ticker(order.symbol).first()
        if found is None:
            raise Rejected(f"unknown instrument {order.symbol}")
        return found

    def _bar_size_for(self, symbol: Symbol) -> str:
        """The bar series an order fills against: the one asked for, else the finest stored for the symbol."""
        if self.bar_size:
            return self.bar_size
        stored = set(Bar.objects.for_symbol(symbol).values_list("bar_size", flat=True).distinct())
        return next((size for size in BarSize.values if size in stored), BarSize.D1)

    def _commission(self, account: SimAccount, quantity: Decimal) -> Decimal:
        return max(quantity * account.commission_per_share, account.commission_minimum).quantize(
            Decimal("0.0001"), rounding=ROUND_HALF_UP
        )

    def _bars(self, order: SimOrder, after: dt.datetime, now: dt.datetime) -> list[tuple[dt.datetime, pd.Series]]:
        try:
            frame = self.bar_source.bars(order.symbol, order.bar_size, start=after, end=now)
        except BarSourceError:
            return []
        return [(ts.to_pydatetime(), row) for ts, row in frame.iterrows() if ts.to_pydatetime() > after]

    # --- the ledger moves ------------------------------------------------------------------------------------------

    def advance(self) -> None:
        """Fill, expire and cancel whatever the bars up to the clock's now decide."""
        now = self.clock.now()
        with transaction.atomic():
            account = SimAccount.objects.select_for_update().get(pk=self._account().pk)
            working = list(SimOrder.objects.filter(account=account, status=WORKING).select_related("symbol"))
            # entries before exits, so an exit sees its parent's fill from this same pass
            working.sort(key=lambda o: (o.parent_id is not None, o.placed_at, o.id))
            for order in working:
                order.refresh_from_db()
                if order.status != WORKING:
                    continue
                self._work(account, order, now)

    def _work(self, account: SimAccount, order: SimOrder, now: dt.datetime) -> None:
        if order.parent_id:
            parent = SimOrder.objects.get(pk=order.parent_id)
            if parent.status in (SimOrderStatus.CANCELLED, SimOrderStatus.EXPIRED, SimOrderStatus.REJECTED):
                self._close(order, SimOrderStatus.CANCELLED, now, "parent order did not fill")
                return
            if parent.status != SimOrderStatus.FILLED:
                return
            awake_from = parent.fills.order_by("-executed_at").values_list("executed_at", flat=True).first()
            assert awake_from is not None  # a FILLED order has its fill (_fill writes both in one transaction)
        else:
            awake_from = order.placed_at
        bars = self._bars(order, awake_from, now)
        daily = BarSize.is_daily_or_longer(order.bar_size)
        if order.tif == "DAY":
            bars = bars[:1] if daily else [(ts, row) for ts, row in bars if order.expires_at and ts < order.expires_at]
        for timestamp, bar in bars:
            price = self._fill_price(order, bar)
            if price is not None:
                # A daily bar is keyed at 00:00 UTC of its session date, which is the evening before in New York:
                # its fills happen in the session, dated at its open (never later than the clock).
                at = (
                    min(session_open(timestamp.date(), order.symbol.time_zone, order.symbol.exchange), now)
                    if daily
                    else timestamp
                )
                self._fill(account, order, price, at)
                return
        if order.tif == "DAY":
            if daily and bars:
                self._close(order, SimOrderStatus.EXPIRED, now, "DAY order: its session passed without a fill")
            elif order.expires_at and now >= order.expires_at:
                # by the clock, even when no bar came (a wall clock far beyond the stored bars)
                self._close(order, SimOrderStatus.EXPIRED, now, "DAY order: the session closed without a fill")

    @staticmethod
    def _fill_price(order: SimOrder, bar: pd.Series) -> Decimal | None:
        open_, high, low = _price(bar["open"]), _price(bar["high"]), _price(bar["low"])
        buy = order.side == "BUY"
        if order.order_type == "MKT":
            return open_
        if order.order_type == "LMT":
            limit = order.limit_price
            assert limit is not None  # _validate: a limit order has its limit price
            if buy:
                return open_ if open_ <= limit else (limit if low <= limit else None)
            return open_ if open_ >= limit else (limit if high >= limit else None)
        if order.order_type in ("STP", "STOP_LIMIT"):
            stop = order.stop_price
            assert stop is not None  # _validate: a stop order has its stop price
            if buy:
                triggered = open_ if open_ >= stop else (stop if high >= stop else None)
            else:
                triggered = open_ if open_ <= stop else (stop if low <= stop else None)
            if triggered is None or order.order_type == "STP":
                return triggered
            limit = order.limit_price
            assert limit is not None
            if buy:
                return min(triggered, limit) if low <= limit else None
            return max(triggered, limit) if high >= limit else None
        return None

    def _fill(self, account: SimAccount, order: SimOrder, price: Decimal, at: dt.datetime) -> None:
        quantity = order.quantity - order.filled_quantity
        commission = self._commission(account, quantity)
        position, _ = SimPosition.objects.select_for_update().get_or_create(account=account, symbol=order.symbol)
        if order.side == "BUY":
            cost = price * quantity + commission
            if cost > account.cash:
                self._close(order, SimOrderStatus.REJECTED, at, f"insufficient cash at the fill: {cost:.2f} needed")
                return
            total = position.quantity + quantity
            position.average_cost = ((position.average_cost * position.quantity + price * quantity) / total).quantize(
                Decimal("0.000001")
            )
            position.quantity = total
            account.cash -= cost
        else:
            if position.quantity < quantity:
                self._close(order, SimOrderStatus.REJECTED, at, "not enough shares to sell (no shorting)")
                return
            position.realized_pnl += (price - position.average_cost) * quantity - commission
            position.quantity -= quantity
            account.cash += price * quantity - commission
        position.save()
        account.save(update_fields=["cash"])
        SimFill.objects.create(
            order=order,
            execution_id=f"sim-{uuid.uuid4().hex}",
            quantity=quantity,
            price=price,
            commission=commission,
            executed_at=at,
        )
        order.filled_quantity = order.quantity
        order.average_price = price
        self._close(order, SimOrderStatus.FILLED, at)
        if order.parent_id:  # OCA: the other exit goes
            for sibling in SimOrder.objects.filter(parent_id=order.parent_id, status=WORKING).exclude(pk=order.pk):
                self._close(sibling, SimOrderStatus.CANCELLED, at, "OCA: the other exit filled")

    @staticmethod
    def _close(order: SimOrder, status: str, at: dt.datetime, reason: str = "") -> None:
        order.status = status
        order.closed_at = at
        order.reason = reason[:300]
        order.save(update_fields=["status", "closed_at", "reason", "filled_quantity", "average_price"])

    # --- the interface ---------------------------------------------------------------------------------------------

    def session(self) -> SessionState:
        return SessionState(authenticated=True, connected=True, competing=False, server="simulated")

    def account_summary(self) -> AccountSummary:
        self.advance()
        account = self._account()
        value = sum((p.market_value or Decimal(0) for p in self._positions(account)), Decimal(0))
        return AccountSummary(
            account_id=self.account_key,
            currency="USD",
            cash=account.cash.quantize(CENT),
            net_liquidation=(account.cash + value).quantize(CENT),
            buying_power=account.cash.quantize(CENT),
        )

    def _positions(self, account: SimAccount) -> list[BrokerPosition]:
        result = []
        for row in SimPosition.objects.filter(account=account, quantity__gt=0).select_related("symbol"):
            try:
                last = self.bar_source.latest_price(row.symbol, at=self.clock.now())
            except BarSourceError:
                last = None
            result.append(
                BrokerPosition(
                    conid=row.symbol.conid,
                    symbol=row.symbol.symbol,
                    quantity=row.quantity,
                    average_cost=row.average_cost,
                    market_price=last,
                    market_value=(last * row.quantity).quantize(CENT) if last is not None else None,
                    unrealized_pnl=((last - row.average_cost) * row.quantity).quantize(CENT) if last else None,
                    realized_pnl=row.realized_pnl,
                    currency=row.symbol.currency,
                )
            )
        return result

    def positions(self) -> list[BrokerPosition]:
        self.advance()
        return self._positions(self._account())

    def search(self, query: str) -> list[Contract]:
        return [_contract(s) for s in Symbol.objects.filter(symbol__istartswith=query.strip())[:20]]

    def contract(self, conid: int) -> Contract:
        symbol = Symbol.objects.filter(conid=conid).first()
        if symbol is None:
            raise Rejected(f"no contract {conid}")
        return _contract(symbol)

    def last_price(self, symbol: Symbol) -> Decimal:
        try:
            return self.bar_source.latest_price(symbol, at=self.clock.now())
        except BarSourceError as exc:
            raise Transient(f"no price for {symbol}: {exc}") from exc

    def _check_affordable(self, account: SimAccount, order: OrderRequest, symbol: Symbol) -> None:
        if order.side == "BUY":
            price = order.limit_price or order.stop_price or self.last_price(symbol)
            cost = price * order.quantity + self._commission(account, order.quantity)
            if cost > account.cash:
                raise Rejected(f"insufficient cash: {cost:.2f} needed, {account.cash:.2f} available")
        else:
            held = SimPosition.objects.filter(account=account, symbol=symbol).values_list(
                "quantity", flat=True
            ).first() or Decimal(0)
            selling = sum(
                (
                    o.quantity - o.filled_quantity
                    for o in SimOrder.objects.filter(
                        account=account, symbol=symbol, side="SELL", status=WORKING, parent__isnull=True
                    )
                ),
                Decimal(0),
            )
            if order.quantity > held - selling:
                raise Rejected(f"not enough shares to sell: {held - selling} free (no shorting)")

    def _new_order(
        self, account: SimAccount, order: OrderRequest, symbol: Symbol, *, parent: SimOrder | None = None
    ) -> SimOrder:
        now = self.clock.now()
        expires = None
        if order.tif == "DAY":
            expires = session_close(
                day_order_session(now, symbol.time_zone, symbol.exchange), symbol.time_zone, symbol.exchange
            )
        return SimOrder.objects.create(
            account=account,
            order_ref="" if parent else order.client_order_id,
            parent=parent,
            symbol=symbol,
            bar_size=self._bar_size_for(symbol),
            side=order.side,
            order_type=order.order_type,
            quantity=order.quantity,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            tif=order.tif,
            placed_at=now,
            expires_at=expires,
        )

    def _validate(self, order: OrderRequest) -> None:
        if order.quantity <= 0:
            raise Rejected("quantity must be positive")
        if order.order_type in ("LMT", "STOP_LIMIT") and not order.limit_price:
            raise Rejected("a limit order needs a limit price")
        if order.order_type in ("STP", "STOP_LIMIT") and not order.stop_price:
            raise Rejected("a stop order needs a stop price")

    def _duplicate(self, account: SimAccount, client_order_id: str) -> None:
        if SimOrder.objects.filter(account=account, order_ref=client_order_id).exists():
            raise DuplicateClientOrderId(
                f"Order couldn't be submitted: Local order ID={client_order_id} is already registered."
            )

    def place(self, order: OrderRequest) -> Placement:
        self.advance()
        self._validate(order)
        symbol = self._symbol(order)
        with transaction.atomic():
            account = SimAccount.objects.select_for_update().get(pk=self._account().pk)
            self._duplicate(account, order.client_order_id)
            self._check_affordable(account, order, symbol)
            placed = self._new_order(account, order, symbol)
        return Placement(broker_order_ids=[str(placed.pk)])

    def place_bracket(self, bracket: BracketRequest) -> Placement:
        self.advance()
        for order in (bracket.entry, bracket.stop, bracket.target):
            self._validate(order)
        symbol = self._symbol(bracket.entry)
        with transaction.atomic():
            account = SimAccount.objects.select_for_update().get(pk=self._account().pk)
            self._duplicate(account, bracket.entry.client_order_id)
            self._check_affordable(account, bracket.entry, symbol)
            parent = self._new_order(account, bracket.entry, symbol)
            stop = self._new_order(account, bracket.stop, symbol, parent=parent)
            target = self._new_order(account, bracket.target, symbol, parent=parent)
        return Placement(broker_order_ids=[str(parent.pk), str(stop.pk), str(target.pk)])

    def _get(self, broker_order_id: str) -> SimOrder:
        order = (
            SimOrder.objects.filter(account__connection=self.connection, pk=int(broker_order_id))
            .select_related("symbol")
            .first()
            if str(broker_order_id).isdigit()
            else None
        )
        if order is None:
            raise Rejected(f"OrderID {broker_order_id} doesn't exist")
        return order

    def order_status(self, broker_order_id: str) -> BrokerOrder:
        self.advance()
        return _broker_order(self._get(broker_order_id))

    def open_orders(self) -> list[BrokerOrder]:
        self.advance()
        orders = SimOrder.objects.filter(account__connection=self.connection).select_related("symbol")
        return [_broker_order(o) for o in orders]

    def find_order(self, client_order_id: str) -> BrokerOrder | None:
        self.advance()
        order = (
            SimOrder.objects.filter(account__connection=self.connection, order_ref=client_order_id)
            .select_related("symbol")
            .first()
        )
        return _broker_order(order) if order else None

    def cancel(self, broker_order_id: str) -> None:
        self.advance()
        with transaction.atomic():
            order = SimOrder.objects.select_for_update().get(pk=self._get(broker_order_id).pk)
            if order.status != WORKING:
                raise Rejected(f"OrderID {broker_order_id} is {order.status.lower()}, not working")
            now = self.clock.now()
            self._close(order, SimOrderStatus.CANCELLED, now, "cancelled on request")
            # cancelling the parent cancels its exits; cancelling one exit cancels its OCA sibling
            related = SimOrder.objects.filter(parent=order) | (
                SimOrder.objects.filter(parent_id=order.parent_id) if order.parent_id else SimOrder.objects.none()
            )
            for other in related.filter(status=WORKING):
                self._close(other, SimOrderStatus.CANCELLED, now, "cancelled with its group")

    def modify(self, broker_order_id: str, order: OrderRequest) -> Placement:
        self.advance()
        self._validate(order)
        with transaction.atomic():
            current = SimOrder.objects.select_for_update().get(pk=self._get(broker_order_id).pk)
            if current.status != WORKING:
                raise Rejected(f"OrderID {broker_order_id} is {current.status.lower()}, cannot modify")
            current.quantity = order.quantity
            current.limit_price = order.limit_price
            current.stop_price = order.stop_price
            current.save(update_fields=["quantity", "limit_price", "stop_price"])
        return Placement(broker_order_ids=[str(current.pk)])

    def executions(self, *, days: int = 1) -> list[Execution]:
        self.advance()
        since = self.clock.now() - dt.timedelta(days=days)
        fills = SimFill.objects.filter(
            order__account__connection=self.connection, executed_at__gte=since
        ).select_related("order", "order__symbol", "order__parent")
        return [
            Execution(
                execution_id=fill.execution_id,
                broker_order_id=str(fill.order_id),
                order_ref=fill.order.order_ref,
                conid=fill.order.symbol.conid,
                symbol=fill.order.symbol.symbol,
                side=fill.order.side,
                quantity=fill.quantity,
                price=fill.price,
                commission=fill.commission,
                executed_at=fill.executed_at,
            )
            for fill in fills
        ]


def _contract(symbol: Symbol) -> Contract:
    return Contract(
        conid=symbol.conid,
        symbol=symbol.symbol,
        name=symbol.name,
        exchange=symbol.exchange,
        currency=symbol.currency,
        asset_type=symbol.asset_type,
    )


def _broker_order(order: SimOrder) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=str(order.pk),
        order_ref=order.order_ref,
        status=order.status,
        side=order.side,
        conid=order.symbol.conid,
        symbol=order.symbol.symbol,
        order_type=order.order_type,
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        average_price=order.average_price,
        parent_broker_order_id=str(order.parent_id or ""),
        reason=order.reason,
    )
