"""Fills into positions and P&L; valuation, snapshots, statistics; reconciliation against the broker.

Average-cost accounting: a BUY fill adds to the position at its price (commission included in the cost), a SELL
fill realises (price − average cost) × quantity − commission. A trade is applied exactly once: `realized_pnl` is
NULL until it is, and applying it sets it in the same transaction as the position change.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Required, TypedDict, Unpack, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum
from django.urls import reverse
from django.utils import timezone

from brokers.interface import Broker, BrokerOrder, BrokerPosition
from brokers.models import BrokerConnection
from brokers.services import broker_for
from market.calendar import day_order_session, session_close
from market.clock import MarketClock, WallClock, clock_for_strategy
from market.models import Bar, MarketDataSource, Symbol
from market.sources import source_for_strategy
from notifications.models import NotificationKind
from notifications.services import notify
from orders.models import Order, OrderLeg, OrderSide, OrderSource, OrderType, TimeInForce, Trade
from orders.protocols import StrategyLike
from orders.services import (
    Bracket,
    OrderInputError,
    order_cancel,
    order_place,
    order_reconcile,
    orders_sync,
    position_exit_refusal,
)
from orders.statuses import OPEN_STATUSES, TERMINAL_STATUSES
from portfolio.models import PortfolioSnapshot, Position, Reconciliation
from signals_app.models import SignalAction, SignalOutcome, TradingSignal

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
PRICE_Q = Decimal("0.000001")
PNL_Q = Decimal("0.0001")
MONEY_Q = Decimal("0.01")
SCRATCH_R = Decimal("0.1")  # a closed trade within ±0.1 R of break-even is neither a win nor a loss
R_QUANTUM = Decimal("0.0001")


# --- fills ---------------------------------------------------------------------------------------------------------


@dataclass
class FillResult:
    trade: Trade
    position: Position | None
    realized_pnl: Decimal
    closed: bool = False
    applied: bool = True  # False: it had been applied before


def fill_apply(*, trade: Trade) -> FillResult:
    """Apply one fill to its position: open, grow, reduce or close it, realise P&L, and settle the outcome and R
    multiple of the signals behind it. Applying the same trade again changes nothing."""
    with transaction.atomic():
        trade = Trade.with_replays.select_for_update().select_related("order").get(pk=trade.pk)
        if trade.realized_pnl is not None:
            return FillResult(trade=trade, position=None, realized_pnl=trade.realized_pnl, applied=False)
        order = trade.order
        open_positions = Position.with_replays.select_for_update().filter(closed_at__isnull=True)
        # An order bound to a position changes that one (a manual SELL closing a strategy's position, say)
        position = (open_positions.filter(pk=order.position_id).first() if order.position_id else None) or (
            # ignore: strategy_id None means IS NULL, which the plugin's lookup type for an `_id` leaves out
            open_positions.filter(  # type: ignore[misc]
                owner_id=order.owner_id, strategy_id=order.strategy_id, symbol_id=order.symbol_id
            ).first()
        )
        if order.side == OrderSide.BUY:
            result = _apply_buy(trade, order, position)
        else:
            result = _apply_sell(trade, order, position)
        Trade.with_replays.filter(pk=trade.pk).update(realized_pnl=result.realized_pnl)
        trade.realized_pnl = result.realized_pnl
    if result.position is not None:
        _signals_settle(result.position)
    return result


def _apply_buy(trade: Trade, order: Order, position: Position | None) -> FillResult:
    if position is None:
        position = Position(
            owner_id=order.owner_id,
            strategy_id=order.strategy_id,
            symbol_id=order.symbol_id,
            is_replay=order.is_replay,
            quantity=ZERO,
            average_cost=ZERO,
            opened_at=trade.executed_at,
        )
    cost = position.quantity * position.average_cost + trade.quantity * trade.price + trade.commission
    position.quantity += trade.quantity
    position.average_cost = (cost / position.quantity).quantize(PRICE_Q)
    signal = order.signal
    if signal is not None:
        position.stop_loss = signal.stop_loss or position.stop_loss
        position.take_profit = signal.take_profit or position.take_profit
    position.save()
    if order.position_id is None:
        Order.with_replays.filter(pk=order.pk).update(position=position)
        Order.with_replays.filter(parent=order).update(position=position)
    return FillResult(trade=trade, position=position, realized_pnl=ZERO)


def _apply_sell(trade: Trade, order: Order, position: Position | None) -> FillResult:
    if position is None:
        # Nothing of ours to sell (a manual sale at the broker): realise only the commission and let
        # reconciliation flag the difference.
        logger.warning("sell fill %s has no open position to reduce", trade.broker_execution_id)
        return FillResult(trade=trade, position=None, realized_pnl=(-trade.commission).quantize(PNL_Q))
    quantity = min(trade.quantity, position.quantity)
    if quantity < trade.quantity:
        logger.warning("sell fill %s is larger than the position %s", trade.broker_execution_id, position.pk)
    realized = ((trade.price - position.average_cost) * quantity - trade.commission).quantize(PNL_Q)
    position.quantity -= quantity
    position.realized_pnl += realized
    closed = position.quantity == 0
    if closed:
        position.closed_at = max(trade.executed_at, position.opened_at)
    position.save()
    if order.position_id is None:
        Order.with_replays.filter(pk=order.pk).update(position=position)
    return FillResult(trade=trade, position=position, realized_pnl=realized, closed=closed)


@dataclass(frozen=True)
class Books:
    quantity: Decimal
    average_cost: Decimal
    realized_pnl: Decimal


def position_from_trades(*, position: Position) -> Books:
    """What a position is by its booked trades alone, applied in booking order as fill_apply applies them. The books
    are right when this equals the stored position: `positions_disagreeing` says where it does not."""
    quantity = average_cost = realized = ZERO
    trades = (
        Trade.with_replays.filter(order__position=position, realized_pnl__isnull=False)
        .select_related("order")
        .order_by("executed_at", "pk")
    )
    for trade in trades:
        if trade.order.side == OrderSide.BUY:
            cost = quantity * average_cost + trade.quantity * trade.price + trade.commission
            quantity += trade.quantity
            average_cost = (cost / quantity).quantize(PRICE_Q)
        else:
            sold = min(trade.quantity, quantity)
            realized += ((trade.price - average_cost) * sold - trade.commission).quantize(PNL_Q)
            quantity -= sold
    return Books(quantity=quantity, average_cost=average_cost, realized_pnl=realized)


def positions_disagreeing(*, positions: QuerySet[Position] | None = None) -> list[str]:
    """Every position (a replay's too) whose stored quantity, average cost or realised P&L differs from what its
    trades say, in words. A position no booked BUY opened (made by hand, not by fills) is not judged."""
    rows = positions if positions is not None else Position.with_replays.all()
    problems = []
    opened_by_fills = rows.filter(
        closing_orders__side=OrderSide.BUY, closing_orders__trades__realized_pnl__isnull=False
    ).distinct()
    for position in opened_by_fills:
        books = position_from_trades(position=position)
        stored = Books(position.quantity, position.average_cost, position.realized_pnl)
        if stored != books:
            problems.append(f"position {position.pk}: stored {stored}, its trades say {books}")
    return problems


def _signals_settle(position: Position) -> None:
    """The outcome and R multiple of the signals whose entries built this position (signals_app works them out from
    the fills: entries, and exits that carry the position)."""
    signal_ids = (
        Order.with_replays.filter(position=position, side=OrderSide.BUY, signal__isnull=False)
        .values_list("signal_id", flat=True)
        .distinct()
    )
    signals = list(TradingSignal.with_replays.filter(pk__in=list(signal_ids)))
    if signals:
        signal_outcomes_settle(signals=signals)


# --- exits -----------------------------------------------------------------------------------------------------


def position_exit_working(*, position: Position, bracket_legs: bool = False) -> Order | None:
    """The position's earliest exit that is still working (sent or about to be), if any. A bracket's own stop and
    target are left out (an exit cancels them first) unless `bracket_legs`: the stop/target watch leaves a position
    whose bracket is working to the broker."""
    exits = Order.with_replays.filter(position=position, side=OrderSide.SELL).exclude(status__in=TERMINAL_STATUSES)
    if not bracket_legs:
        exits = exits.parents()
    return exits.order_by("created_at", "pk").first()


def position_exit_place(
    *,
    position: Position,
    limit_price: Decimal,
    source: str,
    signal: TradingSignal | None = None,
    clock: MarketClock | None = None,
    client_order_id: str | None = None,
    broker: Broker | None = None,
) -> Order:
    """Close a position with a DAY limit SELL of all of it through the order service. Open bracket exits of the
    position are cancelled first, so the position is not sold twice. `broker`: the caller's (a replay's), else the
    connection's."""
    strategy = position.strategy
    connection = strategy.broker_connection if strategy is not None else None
    for child in Order.with_replays.filter(parent__position=position, side=OrderSide.SELL).open():
        try:
            order_cancel(order=child, broker=broker, clock=clock)
        except Exception as exc:  # the exit still goes out; reconciliation reports a double sale
            logger.warning("could not cancel bracket exit %s: %s", child.client_order_id, exc)
    return order_place(
        owner=position.owner,
        broker_connection=connection,
        symbol=position.symbol,
        side=OrderSide.SELL,
        quantity=position.quantity,
        order_type=OrderType.LIMIT,
        limit_price=Decimal(limit_price).quantize(Decimal("0.01"), rounding=ROUND_DOWN),
        tif=TimeInForce.DAY,
        strategy=strategy,
        signal=signal,
        leg=OrderLeg.EXIT,
        source=source,
        position=position,
        client_order_id=client_order_id,
        clock=clock,
        broker=broker,
    )


# --- valuation -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionValue:
    position_id: int
    strategy_id: int | None
    symbol: str
    quantity: Decimal
    average_cost: Decimal
    price: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True)
class Valuation:
    at: dt.datetime
    cash: Decimal
    positions_value: Decimal
    total_value: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    positions: list[PositionValue] = field(default_factory=list)


def position_to_sell(
    *, owner: User, broker_connection: BrokerConnection | None, symbol: Symbol, quantity: Decimal
) -> Position:
    """The open position of the owner in `symbol` on this account that a manual SELL closes (part of): the first that
    still has `quantity` to sell, else the first (and the exit check says why it cannot). The product is long-only:
    with no open position there is nothing to sell, and the broker would go short, so nothing is recorded or sent."""
    positions = list(
        Position.objects.for_owner(owner)
        .open()
        .filter(symbol=symbol)
        .filter(Q(strategy__isnull=True) | Q(strategy__broker_connection=broker_connection))
        .order_by("opened_at", "pk")
    )
    if not positions:
        raise OrderInputError(
            f"you hold no {symbol.symbol} on this account: a SELL can only close (part of) an open position "
            "(no short selling)"
        )
    return next((p for p in positions if not position_exit_refusal(position=p, quantity=quantity)), positions[0])


class OrderOptions(TypedDict, total=False):
    """The keywords of `order_place` that `manual_order_place` passes on as they are."""

    order_type: Required[str]
    limit_price: Decimal | None
    stop_price: Decimal | None
    tif: str
    strategy: StrategyLike | None
    signal: TradingSignal | None
    leg: str
    bracket: Bracket | None
    source: str | None
    client_order_id: str | None
    clock: MarketClock | None
    broker: Broker | None


def manual_order_place(
    *,
    owner: User,
    broker_connection: BrokerConnection | None,
    symbol: Symbol,
    side: str,
    quantity: Decimal,
    **order: Unpack[OrderOptions],
) -> Order:
    """A trader's own order, from the order page, the API or the `ibkr` command, through the one order service.
    A SELL closes (part of) the owner's open position in the symbol on that account: it is bound to that position
    and placed as its exit (a kill switch stops entries, not exits). With no such position there is nothing to sell
    (long-only), and OrderInputError says so before anything is recorded or sent."""
    position: Position | None = None
    if side == OrderSide.SELL:
        position = position_to_sell(owner=owner, broker_connection=broker_connection, symbol=symbol, quantity=quantity)
        order["leg"] = OrderLeg.EXIT
    return order_place(
        owner=owner,
        broker_connection=broker_connection,
        symbol=symbol,
        side=side,
        quantity=quantity,
        position=position,
        **order,
    )


def position_price(position: Position) -> tuple[Decimal | None, dt.datetime]:
    """The position's price now by its strategy's market clock and bar source; else the last stored close."""
    if position.strategy is not None:
        try:
            clock = clock_for_strategy(position.strategy)
            return source_for_strategy(position.strategy).latest_price(position.symbol, at=clock.now()), clock.now()
        except Exception as exc:  # a source that cannot answer falls back to the stored bars
            logger.info("no live price for %s: %s", position.symbol, exc)
    now = WallClock().now()
    close = Bar.objects.for_symbol(position.symbol).up_to(now).newest_first().values_list("close", flat=True).first()
    return close, now


def cash_ledger(*, owner: User) -> Decimal:
    """Cash by our own books: the simulated accounts' starting cash plus sales, less purchases and commissions."""
    start = (
        BrokerConnection.objects.filter(owner=owner, kind="simulated").aggregate(total=Sum("starting_cash"))["total"]
        or ZERO
    )
    return (start + _cash_flows(Trade.objects.filter(order__in=Order.objects.for_owner(owner)))).quantize(MONEY_Q)


def _cash_flows(trades: QuerySet[Trade]) -> Decimal:
    """What these fills did to cash: sales in, purchases out, commissions out."""
    flows = ZERO
    for side, quantity, price, commission in trades.values_list("order__side", "quantity", "price", "commission"):
        amount = quantity * price
        flows += (amount if side == OrderSide.SELL else -amount) - commission
    return flows


def portfolio_valuation(*, owner: User, cash: Decimal | None = None) -> Valuation:
    """Open positions at their clocks' current prices, cash (ours unless given, e.g. the broker's), realised and
    unrealised P&L."""
    values: list[PositionValue] = []
    at = timezone.now()
    for position in Position.objects.for_owner(owner).open().select_related("symbol", "strategy"):
        price, at = position_price(position)
        market_value = (position.quantity * price) if price is not None else position.quantity * position.average_cost
        unrealized = (market_value - position.quantity * position.average_cost) if price is not None else ZERO
        values.append(
            PositionValue(
                position_id=position.pk,
                strategy_id=position.strategy_id,
                symbol=position.symbol.symbol,
                quantity=position.quantity,
                average_cost=position.average_cost,
                price=price,
                market_value=market_value.quantize(MONEY_Q),
                unrealized_pnl=unrealized.quantize(MONEY_Q),
            )
        )
    cash = cash_ledger(owner=owner) if cash is None else cash
    positions_value = sum((v.market_value for v in values), ZERO)
    live_orders = Order.objects.for_owner(owner)
    realized = Trade.objects.filter(order__in=live_orders).aggregate(total=Sum("realized_pnl"))["total"] or ZERO
    return Valuation(
        at=at,
        cash=cash,
        positions_value=positions_value,
        total_value=(cash + positions_value).quantize(MONEY_Q),
        realized_pnl=realized.quantize(MONEY_Q),
        unrealized_pnl=sum((v.unrealized_pnl for v in values), ZERO),
        positions=values,
    )


def snapshot_take(*, owner: User, taken_at: dt.datetime | None = None) -> PortfolioSnapshot:
    valuation = portfolio_valuation(owner=owner)
    return PortfolioSnapshot.objects.create(
        owner=owner,
        cash=valuation.cash,
        positions_value=valuation.positions_value,
        total_value=valuation.total_value,
        realized_pnl=valuation.realized_pnl,
        unrealized_pnl=valuation.unrealized_pnl,
        taken_at=taken_at or timezone.now(),
    )


# --- statistics ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statistics:
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    total_pnl: Decimal
    max_drawdown: Decimal


def portfolio_statistics(*, owner: User, strategy: StrategyLike | None = None) -> Statistics:
    """Over closing fills (sells): count, win rate, average and extreme wins and losses, total realised P&L, and the
    largest fall of cumulative realised P&L from a peak."""
    sells = Trade.objects.filter(
        order__in=Order.objects.for_owner(owner), order__side=OrderSide.SELL, realized_pnl__isnull=False
    )
    if strategy is not None:
        # ignore: the plugin wants trading's Strategy, a layer above, known here as a StrategyLike
        sells = sells.filter(order__strategy=strategy)  # type: ignore[misc]
    # realized_pnl__isnull=False: no None among them
    pnls = cast(list[Decimal], list(sells.order_by("executed_at", "id").values_list("realized_pnl", flat=True)))
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    peak = running = drawdown = ZERO
    for pnl in pnls:
        running += pnl
        peak = max(peak, running)
        drawdown = max(drawdown, peak - running)
    return Statistics(
        trades=len(pnls),
        wins=len(wins),
        losses=len(losses),
        win_rate=(Decimal(len(wins)) / len(pnls)).quantize(PNL_Q) if pnls else None,
        average_win=(sum(wins, ZERO) / len(wins)).quantize(MONEY_Q) if wins else None,
        average_loss=(sum(losses, ZERO) / len(losses)).quantize(MONEY_Q) if losses else None,
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
        total_pnl=sum(pnls, ZERO),
        max_drawdown=drawdown,
    )


# --- reconciliation ------------------------------------------------------------------------------------------------


def account_positions(*, broker_connection: BrokerConnection) -> QuerySet[Position]:
    """The open positions our books hold on this account: its strategies' (archived ones' too), and manual ones
    opened by an order sent to it."""
    return (
        Position.objects.open()
        .filter(owner=broker_connection.owner)
        .filter(
            Q(strategy__broker_connection=broker_connection)
            | Q(strategy__isnull=True, closing_orders__broker_connection=broker_connection)
        )
        .distinct()
    )


def account_cash(*, broker_connection: BrokerConnection) -> Decimal:
    """A simulated account's cash by our books: its starting cash, plus sales, less purchases and commissions."""
    flows = _cash_flows(Trade.objects.filter(order__broker_connection=broker_connection))
    return (broker_connection.starting_cash + flows).quantize(MONEY_Q)


def positions_reconcile(
    *,
    broker_connection: BrokerConnection,
    broker_positions: Iterable[BrokerPosition],
    broker_cash: Decimal | None = None,
    broker_orders: Iterable[BrokerOrder] = (),
) -> Reconciliation:
    """Compare our books for this account with what the broker says: positions by symbol, a simulated account's cash
    (`broker_cash`), and orders working at the broker that we never placed. A symbol whose positions differ halts:
    no new entries, and exits wait, until a later check finds it agrees (fills found at the broker were booked, or
    the owner accepted the broker's position). Differences are recorded and told, never silently "fixed"."""
    ours: dict[str, Decimal] = {}
    for symbol, quantity in account_positions(broker_connection=broker_connection).values_list(
        "symbol__symbol", "quantity"
    ):
        ours[symbol] = ours.get(symbol, ZERO) + quantity
    theirs: dict[str, Decimal] = {}
    for held in broker_positions:
        if held.quantity:
            theirs[held.symbol] = theirs.get(held.symbol, ZERO) + Decimal(held.quantity)
    drift: list[dict[str, str]] = [
        {"symbol": symbol, "ours": str(ours.get(symbol, ZERO)), "broker": str(theirs.get(symbol, ZERO))}
        for symbol in sorted(set(ours) | set(theirs))
        if ours.get(symbol, ZERO) != theirs.get(symbol, ZERO)
    ]
    cash_ours = None
    if broker_cash is not None and broker_connection.kind == "simulated":
        cash_ours = account_cash(broker_connection=broker_connection)
        if abs(cash_ours - broker_cash) >= MONEY_Q:
            drift.append({"kind": "cash", "ours": str(cash_ours), "broker": str(broker_cash)})
    ours_ids = Order.with_replays.for_connection(broker_connection).values_list("client_order_id", "broker_order_id")
    refs = {ref for ref, _ in ours_ids}
    broker_ids = {broker_id for _, broker_id in ours_ids if broker_id}
    for order in broker_orders:
        known = order.order_ref in refs or order.broker_order_id in broker_ids or order.parent_broker_order_id
        if order.status in OPEN_STATUSES and not known:
            drift.append(
                {
                    "kind": "order",
                    "order_ref": order.order_ref,
                    "broker_order_id": order.broker_order_id,
                    "status": order.status,
                }
            )
    halted = sorted({d["symbol"] for d in drift if "symbol" in d})
    previous = Reconciliation.objects.filter(broker_connection=broker_connection).order_by("-checked_at").first()
    with transaction.atomic():
        reconciliation = Reconciliation.objects.create(
            broker_connection=broker_connection,
            has_drift=bool(drift),
            drift=drift,
            cash_ours=cash_ours,
            cash_broker=broker_cash if cash_ours is not None else None,
            checked_at=timezone.now(),
        )
        BrokerConnection.objects.filter(pk=broker_connection.pk).update(drift_halted=halted)
        broker_connection.drift_halted = halted
    if drift and (previous is None or previous.drift != drift):  # told once per difference, not every check
        _drift_notify(broker_connection, drift)
    return reconciliation


def _drift_notify(broker_connection: BrokerConnection, drift: list[dict[str, str]]) -> None:
    lines = "\n".join(drift_words(d) for d in drift)
    symbols = [d["symbol"] for d in drift if "symbol" in d]
    halt = f"\nNew entries on {', '.join(symbols)} are halted and exits wait until it is resolved." if symbols else ""
    notify(
        owner=broker_connection.owner,
        kind=NotificationKind.DRIFT_FOUND,
        subject=f"Books drift from the broker: {', '.join(symbols) or 'cash/orders'} ({broker_connection.name})",
        body=f"Our books differ from what the broker says:\n{lines}{halt}\nDecide which side is right.",
        path=reverse("portfolio"),
        data={"broker_connection_id": broker_connection.pk, "drift": drift},
    )


def drift_words(difference: dict[str, str]) -> str:
    kind = difference.get("kind", "position")
    if kind == "cash":
        return f"cash: ours {difference['ours']}, the broker's {difference['broker']}"
    if kind == "order":
        ref = difference["order_ref"] or "no order ref"
        return f"an order working at the broker that we did not place: {difference['broker_order_id']} ({ref})"
    return f"{difference['symbol']}: ours {difference['ours']}, the broker's {difference['broker']}"


@dataclass(frozen=True)
class Drift:
    reconciliation: Reconciliation
    difference: dict[str, str]

    @property
    def symbol(self) -> str:
        return self.difference.get("symbol", "")

    @property
    def resolved(self) -> bool:
        return bool(self.symbol) and self.reconciliation.resolved(self.symbol)

    @property
    def words(self) -> str:
        return drift_words(self.difference)


def drift_open(*, owner: User) -> list[Drift]:
    """Each difference the latest check of each of the owner's accounts found: what the dashboard and the portfolio
    page show until a check finds the books agree."""
    latest = Reconciliation.objects.filter(broker_connection=OuterRef("pk")).order_by("-checked_at").values("pk")[:1]
    checks = Reconciliation.objects.filter(
        pk__in=BrokerConnection.objects.filter(owner=owner).values(latest_id=Subquery(latest)), has_drift=True
    ).select_related("broker_connection")
    return [Drift(check, difference) for check in checks for difference in check.drift]


class ResolutionError(ValueError):
    """The resolution asked for does not apply (the drift is gone, or was resolved already)."""


def drift_accept_broker(
    *, reconciliation: Reconciliation, symbol: str, by: User, price: Decimal | None = None
) -> list[Trade]:
    """The owner's resolution of a position drift: our books take the broker's quantity. Each position changed gets
    an adjusting fill (an order of source `reconciliation`, never sent; its trade `recon-<reconciliation id>`, then
    `-2`, `-3` when more than one position moves), so a position still equals its trades, at `price` or else the
    position's average cost (a sale no execution was found for realises nothing we can know). Recorded on the
    reconciliation; the symbol's halt lifts once a check agrees."""
    connection = reconciliation.broker_connection
    difference = next((d for d in reconciliation.position_drift if d["symbol"] == symbol), None)
    if difference is None:
        raise ResolutionError(f"this check found no difference in {symbol}")
    if reconciliation.resolved(symbol):
        raise ResolutionError(f"the {symbol} difference of this check was resolved already")
    latest = Reconciliation.objects.filter(broker_connection=connection).order_by("-checked_at").first()
    if latest is None or latest.pk != reconciliation.pk:
        raise ResolutionError("a later check has replaced this one: resolve what the latest check found")
    target = Decimal(difference["broker"])
    positions = list(
        account_positions(broker_connection=connection).filter(symbol__symbol=symbol).order_by("-opened_at", "-pk")
    )
    ours = sum((p.quantity for p in positions), ZERO)
    if ours != Decimal(difference["ours"]):
        raise ResolutionError(f"our {symbol} books changed since this check: run the check again")
    now = timezone.now()
    trades: list[Trade] = []
    with transaction.atomic():
        excess = ours - target
        for position in positions:
            if excess <= 0:
                break
            sold = min(excess, position.quantity)
            trades.append(
                _adjusting_fill(reconciliation, symbol, position, OrderSide.SELL, sold, price, now, len(trades))
            )
            excess -= sold
        if excess < 0:
            grown = positions[0] if positions else None
            trades.append(
                _adjusting_fill(reconciliation, symbol, grown, OrderSide.BUY, -excess, price, now, len(trades))
            )
        note = f"accepted the broker's {symbol} position of {target.normalize():f} (ours was {ours.normalize():f})"
        reconciliation.resolutions = [
            *reconciliation.resolutions,
            {
                "symbol": symbol,
                "by": by.get_username(),
                "at": now.isoformat(),
                "trade_ids": [t.pk for t in trades],
                "note": note,
            },
        ]
        reconciliation.save(update_fields=["resolutions"])
        halted = [s for s in connection.drift_halted if s != symbol]
        BrokerConnection.objects.filter(pk=connection.pk).update(drift_halted=halted)
        connection.drift_halted = halted
    return trades


def _adjusting_fill(
    reconciliation: Reconciliation,
    symbol_name: str,
    position: Position | None,
    side: str,
    quantity: Decimal,
    price: Decimal | None,
    at: dt.datetime,
    index: int,
) -> Trade:
    connection = reconciliation.broker_connection
    symbol = position.symbol if position is not None else Symbol.objects.filter(symbol=symbol_name).first()
    if symbol is None:
        raise ResolutionError(f"there is no symbol {symbol_name} here to book the broker's position under")
    strategy = position.strategy if position is not None else None
    price = price or (position.average_cost if position is not None and position.average_cost else None)
    if price is None:
        last = Bar.objects.for_symbol(symbol).newest_first().values_list("close", flat=True).first()
        if last is None:
            raise ResolutionError(f"give the price: there is no position cost or stored bar for {symbol.symbol}")
        price = last
    ref = f"recon-{reconciliation.pk}" + (f"-{index + 1}" if index else "")
    order = Order.objects.create(
        owner=connection.owner,
        strategy=strategy,
        broker_connection=connection,
        source=OrderSource.RECONCILIATION,
        symbol=symbol,
        position=position,
        side=side,
        order_type=OrderType.MARKET,
        quantity=quantity,
        time_in_force=TimeInForce.DAY,
        client_order_id=ref,
        leg=OrderLeg.EXIT if side == OrderSide.SELL else OrderLeg.ENTRY,
        status="FILLED",
        filled_quantity=quantity,
        average_fill_price=price,
        status_reason=f"booked by reconciliation {reconciliation.pk}: the broker's position accepted",
    )
    if position is not None:  # booked after everything the position has booked, whatever its fills' clock said
        latest = Trade.objects.filter(order__position=position).order_by("-executed_at").first()
        at = max(at, latest.executed_at) if latest is not None else at
    trade = Trade.objects.create(
        order=order, quantity=quantity, price=price, commission=ZERO, executed_at=at, broker_execution_id=ref
    )
    fill_apply(trade=trade)
    trade.refresh_from_db()
    return trade


# --- tracking: orders to fills to positions -------------------------------------------------------------------------


def connection_clock(broker_connection: BrokerConnection) -> MarketClock:
    """The clock a connection's orders are judged by: its playback strategy's when its open orders all belong to one
    (the simulated broker fills by that strategy's cursor), else real time."""
    open_orders = Order.with_replays.for_connection(broker_connection).open()
    strategy_ids = set(open_orders.values_list("strategy_id", flat=True))
    if len(strategy_ids) == 1 and None not in strategy_ids:
        first = open_orders.select_related("strategy").first()
        assert first is not None  # strategy_ids came from the open orders
        strategy = first.strategy
        assert strategy is not None  # and holds no None
        if strategy.market_data_source == MarketDataSource.PLAYBACK:
            return clock_for_strategy(strategy)
    return WallClock()


def connection_track(
    *,
    broker_connection: BrokerConnection,
    clock: MarketClock | None = None,
    on_fill: Callable[..., object] | None = None,
    on_rejection: Callable[..., object] | None = None,
) -> list[FillResult]:
    """Poll one account: order states and new fills (orders_sync), book each fill into positions and P&L, reconcile
    DAY orders left open after their session. `on_fill(trade=)` hears of each fill booked and `on_rejection(order=)`
    of each order newly rejected (the trading layer passes its notifications)."""
    clock = clock or connection_clock(broker_connection)
    rejected_before = set(
        Order.with_replays.for_connection(broker_connection).filter(status="REJECTED").values_list("pk", flat=True)
    )
    broker = broker_for(broker_connection, clock=clock)
    orders_sync(broker_connection=broker_connection, broker=broker, clock=clock)
    results = []
    # Every fill of this account not booked yet, including any a crash left behind after orders_sync recorded it.
    for trade in Trade.with_replays.filter(
        order__broker_connection=broker_connection, realized_pnl__isnull=True
    ).order_by("executed_at", "pk"):
        result = fill_apply(trade=trade)
        if result.applied:
            results.append(result)
            if on_fill is not None:
                on_fill(trade=result.trade)
    _day_orders_expire(broker_connection=broker_connection, broker=broker, clock=clock)
    if on_rejection is not None:
        newly_rejected = Order.with_replays.for_connection(broker_connection).filter(status="REJECTED")
        for order in newly_rejected.exclude(pk__in=rejected_before):
            on_rejection(order=order)
    return results


def _day_order_close(placed: dt.datetime, symbol: Symbol) -> dt.datetime:
    """When a DAY order placed at `placed` stops working: its session's close by the calendar (13:00 on a half
    day)."""
    session = day_order_session(placed, symbol.time_zone, symbol.exchange)
    return session_close(session, symbol.time_zone, symbol.exchange)


def _day_orders_expire(*, broker_connection: BrokerConnection, broker: Broker, clock: MarketClock) -> None:
    """A DAY order still open after its session's close is asked about again; if the broker still calls it working,
    it is cancelled, so no order outlives the day it was meant for."""
    now = clock.now()
    for order in Order.with_replays.for_connection(broker_connection).open().filter(time_in_force=TimeInForce.DAY):
        placed = order.submitted_at or order.created_at
        if _day_order_close(placed, order.symbol) > now:
            continue
        try:
            order = order_reconcile(order=order, broker=broker, clock=clock)
            if order.is_open and order.broker_order_id:
                order_cancel(order=order, broker=broker, clock=clock)
        except Exception as exc:
            logger.warning("DAY order %s open after its session: %s", order.client_order_id, exc)


# --- the stop/target watch ----------------------------------------------------------------------------------------


def stops_watch(*, allowance: Decimal | None = None) -> list[Order]:
    """Exit open positions that have a stop or target but no bracket working for them, once the last price (by the
    strategy's clock) reaches one (position_watch). A replay's positions are watched by the replay, on its clock."""
    placed = []
    positions = Position.objects.watched().select_related("strategy__broker_connection", "symbol", "owner")
    for position in positions:
        if position_exit_working(position=position, bracket_legs=True):  # before asking for a price: the usual case
            continue
        connection = position.strategy.broker_connection if position.strategy else None
        if connection is not None and position.symbol.symbol in (connection.drift_halted or []):
            continue  # its exit waits for the drift's resolution: the broker may not hold these shares
        price, _ = position_price(position)
        if price is None:
            continue
        order = position_watch(
            position=position, price=price, clock=clock_for_strategy(position.strategy), allowance=allowance
        )
        if order is not None:
            placed.append(order)
    return placed


def position_watch(
    *,
    position: Position,
    price: Decimal,
    clock: MarketClock,
    allowance: Decimal | None = None,
    broker: Broker | None = None,
) -> Order | None:
    """Exit `position` when `price` has reached its stop or target and no exit is working for it: a marketable DAY
    limit at the price less `allowance` (STOP_WATCH_ALLOWANCE). One exit per position per trading day of `clock`:
    its client order id says which. `broker`: the caller's (a replay's), else the connection's."""
    hit_stop = position.stop_loss is not None and price <= position.stop_loss
    hit_target = position.take_profit is not None and price >= position.take_profit
    if not (hit_stop or hit_target) or position_exit_working(position=position, bracket_legs=True):
        return None
    client_order_id = f"w{position.pk}-{clock.trading_day(position.symbol.time_zone):%Y%m%d}"
    if Order.with_replays.by_client_order_id(client_order_id).exists():  # today's exit was tried (and refused)
        return None
    allowance = Decimal(str(settings.STOP_WATCH_ALLOWANCE)) if allowance is None else allowance
    order = position_exit_place(
        position=position,
        limit_price=price * (1 - allowance),
        source=OrderSource.STOP_WATCH,
        clock=clock,
        client_order_id=client_order_id,
        broker=broker,
    )
    logger.info("stop watch: %s %s at %s (%s)", position.symbol.symbol, "stop" if hit_stop else "target", price, order)
    return order


def snapshots_take() -> list[PortfolioSnapshot]:
    """A snapshot for every owner with a broker connection or a position."""
    owners = get_user_model().objects.filter(broker_connections__isnull=False).distinct()
    return [snapshot_take(owner=owner) for owner in owners]


def connection_reconcile(
    *,
    broker_connection: BrokerConnection,
    on_fill: Callable[..., object] | None = None,
    on_rejection: Callable[..., object] | None = None,
) -> Reconciliation:
    """Track the account first (every execution the broker reports under one of our order refs is booked), then ask
    what it holds, its cash and its working orders, and compare (positions_reconcile)."""
    clock = connection_clock(broker_connection)
    connection_track(broker_connection=broker_connection, clock=clock, on_fill=on_fill, on_rejection=on_rejection)
    broker = broker_for(broker_connection, clock=clock)
    cash = broker.account_summary().cash if broker_connection.kind == "simulated" else None
    return positions_reconcile(
        broker_connection=broker_connection,
        broker_positions=broker.positions(),
        broker_cash=cash,
        broker_orders=broker.open_orders(),
    )


# --- signal outcomes: a BUY signal judged by its fills -------------------------------------------------------------


def signal_outcomes_settle(*, signals: Iterable[TradingSignal] | None = None) -> int:
    """Work out the outcome of BUY signals from their fills. Entry fills are the trades of the signal's BUY orders;
    exit fills are SELL trades of orders placed under those entries (bracket legs) or closing the position the entry
    opened. Fully exited: WIN, LOSS or SCRATCH with the R multiple (exit - entry) / (entry - stop), from average fill
    prices. Entered but not fully exited: OPEN. Returns how many signals changed."""
    # All live signals, or the ones handed in (a replay's among them).
    rows = (
        TradingSignal.objects if signals is None else TradingSignal.with_replays.filter(pk__in=[s.pk for s in signals])
    )
    pending = rows.filter(action=SignalAction.BUY, outcome__in=[SignalOutcome.NONE, SignalOutcome.OPEN])
    changed = 0
    for signal in pending:
        outcome, r_multiple = _outcome_from_fills(signal)
        if outcome == signal.outcome:
            continue
        # Conditional on the outcome we read: two settlers racing cannot both write.
        changed += TradingSignal.with_replays.filter(pk=signal.pk, outcome=signal.outcome).update(
            outcome=outcome, r_multiple=r_multiple
        )
    return changed


def _outcome_from_fills(signal: TradingSignal) -> tuple[str, Decimal | None]:
    entries = Order.with_replays.filter(signal=signal, side=OrderSide.BUY)
    entry_qty, entry_price = _average_fill(Trade.with_replays.filter(order__in=entries))
    if not entry_qty:
        return signal.outcome, signal.r_multiple
    positions = [pk for pk in entries.values_list("position_id", flat=True) if pk]
    exits = Trade.with_replays.filter(order__side=OrderSide.SELL).filter(
        Q(order__parent__in=entries) | Q(order__position_id__in=positions)
    )
    exit_qty, exit_price = _average_fill(exits)
    if exit_qty < entry_qty:
        return SignalOutcome.OPEN, None
    risk = entry_price - signal.stop_loss if signal.stop_loss is not None else None
    if not risk or risk <= 0:
        move = (exit_price - entry_price) / entry_price
        outcome = (
            SignalOutcome.SCRATCH
            if abs(move) < Decimal("0.001")
            else (SignalOutcome.WIN if move > 0 else SignalOutcome.LOSS)
        )
        return outcome, None
    r_multiple = ((exit_price - entry_price) / risk).quantize(R_QUANTUM)
    if abs(r_multiple) < SCRATCH_R:
        return SignalOutcome.SCRATCH, r_multiple
    return (SignalOutcome.WIN if r_multiple > 0 else SignalOutcome.LOSS), r_multiple


def _average_fill(trades: QuerySet[Trade]) -> tuple[Decimal, Decimal]:
    rows = list(trades.values_list("quantity", "price"))
    quantity = sum((q for q, _ in rows), Decimal(0))
    if not quantity:
        return Decimal(0), Decimal(0)
    return quantity, sum((q * p for q, p in rows), Decimal(0)) / quantity
