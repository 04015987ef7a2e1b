"""The order service: every order, from a strategy run, a manual form, the stop watch or a replay, goes through
`order_place`, and reaches the broker at most once.

1. Guard: caps on quantity and value, the limit price within a band of the last price, stops on the protective
   side, the market open or a TIF that allows it. A refusal is a REJECTED order with the reason.
2. Record: the Order row is saved PENDING with its client order id before anything is sent. The id is a pure
   function of the intent (`s{strategy}-g{signal}-{leg}`; manual orders store a UUID-based one), so the same intent
   always finds the same row.
3. Claim: PENDING -> SUBMITTING by a conditional update; only the caller that changes the row goes on.
4. Send under the account's lock (`broker:{account}`), held around the POST and every question, so one order
   conversation is in flight per account. No database transaction is open meanwhile.
5. Settle: SUBMITTED or REJECTED from the reply; a lost reply is UNKNOWN, and reconciliation finds the order by its
   client order id (IBKR's `order_ref`). A POST is never repeated: calling again reconciles.

`orders_sync` polls statuses and executions and returns the Trade rows it created, for the portfolio to book.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from brokers.interface import (
    BracketRequest,
    Broker,
    BrokerError,
    BrokerOrder,
    DuplicateClientOrderId,
    Execution,
    OrderRequest,
    OutcomeUnknown,
    PromptNotAnswered,
    Rejected,
    Transient,
)
from brokers.models import BrokerConnection
from brokers.services import broker_for
from core.coordination import LockTimeout, lock
from market.calendar import is_market_open
from market.clock import MarketClock, WallClock
from market.models import Symbol
from orders.models import InvalidTransition, Order, OrderLeg, OrderSide, OrderSource, OrderType, TimeInForce, Trade
from orders.protocols import PositionLike, StrategyLike
from orders.querysets import OrderQuerySet
from orders.statuses import ORDER_TRANSITIONS, TERMINAL_STATUSES, OrderStatus
from signals_app.models import TradingSignal

logger = logging.getLogger(__name__)

S = OrderStatus
STOP_SUFFIX = "-SL"
TARGET_SUFFIX = "-TP"


class OrderInputError(ValueError):
    """The order as typed cannot be an order (bad side, quantity, missing price...). Nothing was recorded."""


@dataclass(frozen=True)
class Bracket:
    """The exits of a bracket: a stop below (for a buy) and a profit target above."""

    stop_price: Decimal
    take_profit: Decimal


# --- client order ids ------------------------------------------------------------------------------------------------


def order_client_id(
    *, strategy: StrategyLike | None = None, signal: TradingSignal | None = None, leg: str = OrderLeg.ENTRY
) -> str:
    """The client order id of an intent. Strategy orders: `s{strategy}-g{signal}-{leg}`, the same every time the
    same signal asks for the same leg. Anything else gets a new UUID-based id, which the caller stores (a form
    renders it as a hidden field so a double submit is one order)."""
    if strategy is not None and signal is not None:
        return f"s{strategy.pk}-g{signal.pk}-{leg}"
    return f"m-{uuid.uuid4().hex[:24]}"


# --- guard -----------------------------------------------------------------------------------------------------------


def order_guard(
    *,
    broker: Broker,
    symbol: Symbol,
    side: str,
    quantity: Decimal,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    tif: str,
    leg: str,
    bracket: Bracket | None,
    strategy: StrategyLike | None = None,
    clock: MarketClock,
) -> str:
    """Why this order must not go out, or "" when it may. These checks are what lets the connection answer IBKR's
    questions o383 (size), o451 (value), o163 (price band) and o10331 (stop risk) with yes."""
    if leg == OrderLeg.ENTRY and settings.TRADING_KILL_SWITCH:
        return "the trading kill switch is on: no new entries"
    if leg == OrderLeg.ENTRY and strategy is not None and strategy.kill_switch:
        return f"strategy {strategy.name}: kill switch on, no new entries"
    max_quantity = Decimal(settings.ORDER_MAX_QUANTITY)
    if quantity > max_quantity:  # o383
        return f"quantity {quantity} is above the per-order cap of {max_quantity} (ORDER_MAX_QUANTITY)"
    now = clock.now()
    if tif == TimeInForce.IOC and not is_market_open(now, symbol.time_zone, symbol.exchange):
        return "the market is closed and an IOC order cannot wait for it"
    if tif == TimeInForce.OPG and is_market_open(now, symbol.time_zone, symbol.exchange):
        return "an OPG order is for the opening auction: the market is already open"
    try:
        last = broker.last_price(symbol)
    except BrokerError as exc:
        return f"no last price for {symbol.symbol} to check the order against: {exc}"
    band = Decimal(str(settings.ORDER_PRICE_BAND))
    # _check_input made sure a limit order has a limit price and a stop order a stop price
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):  # o163
        assert limit_price is not None
        if abs(limit_price - last) > band * last:
            return f"limit {limit_price} is more than {band:.0%} from the last price {last} (ORDER_PRICE_BAND)"
    if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):  # o10331
        assert stop_price is not None
        wrong_side = stop_price <= last if side == OrderSide.BUY else stop_price >= last
        if wrong_side:
            return f"stop {stop_price} would trigger at once: the last price is {last}"
        if abs(stop_price - last) > band * last:
            return f"stop {stop_price} is more than {band:.0%} from the last price {last} (ORDER_PRICE_BAND)"
    reference = max(limit_price or last, stop_price or last, last)
    notional = (reference * quantity).quantize(Decimal("0.01"))
    max_notional = Decimal(settings.ORDER_MAX_NOTIONAL)
    if notional > max_notional:  # o451
        return f"order value {notional} is above the per-order cap of {max_notional} (ORDER_MAX_NOTIONAL)"
    if bracket is not None:  # o10331 for the protective stop
        entry = limit_price or last
        if side == OrderSide.BUY and not bracket.stop_price < min(entry, last):
            return f"bracket stop {bracket.stop_price} must be below the entry {entry} and the last price {last}"
        if side == OrderSide.SELL and not bracket.stop_price > max(entry, last):
            return f"bracket stop {bracket.stop_price} must be above the entry {entry} and the last price {last}"
        profit_side = bracket.take_profit > entry if side == OrderSide.BUY else bracket.take_profit < entry
        if not profit_side:
            return f"bracket target {bracket.take_profit} is on the wrong side of the entry {entry}"
    return ""


def _check_input(
    *,
    side: str,
    quantity: Decimal,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    tif: str,
    leg: str,
    bracket: Bracket | None,
) -> None:
    if side not in OrderSide.values:
        raise OrderInputError(f"side must be BUY or SELL, not {side!r}")
    if order_type not in OrderType.values:
        raise OrderInputError(f"order type must be one of {', '.join(OrderType.values)}, not {order_type!r}")
    if tif not in TimeInForce.values:
        raise OrderInputError(f"time in force must be one of {', '.join(TimeInForce.values)}, not {tif!r}")
    if leg not in OrderLeg.values:
        raise OrderInputError(f"leg must be one of {', '.join(OrderLeg.values)}, not {leg!r}")
    if not isinstance(quantity, Decimal) or quantity <= 0:
        raise OrderInputError("quantity must be a positive Decimal")
    for name, price in (("limit price", limit_price), ("stop price", stop_price)):
        if price is not None and (not isinstance(price, Decimal) or price <= 0):
            raise OrderInputError(f"{name} must be a positive Decimal")
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and limit_price is None:
        raise OrderInputError("a limit order needs a limit price")
    if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and stop_price is None:
        raise OrderInputError("a stop order needs a stop price")
    if bracket is not None and (bracket.stop_price <= 0 or bracket.take_profit <= 0):
        raise OrderInputError("bracket prices must be positive")


# --- place -----------------------------------------------------------------------------------------------------------


def order_place(
    *,
    owner: User,
    broker_connection: BrokerConnection | None,
    symbol: Symbol,
    side: str,
    quantity: Decimal,
    order_type: str,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    tif: str = TimeInForce.DAY,
    strategy: StrategyLike | None = None,
    signal: TradingSignal | None = None,
    leg: str = OrderLeg.ENTRY,
    bracket: Bracket | None = None,
    source: str | None = None,
    client_order_id: str | None = None,
    position: PositionLike | None = None,
    clock: MarketClock | None = None,
    broker: Broker | None = None,
) -> Order:
    """Guard, record, claim, send once, settle. Returns the Order in its settled state (SUBMITTED, REJECTED or
    UNKNOWN), or, for an intent already recorded, the existing Order after reconciling it."""
    _check_input(
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        tif=tif,
        leg=leg,
        bracket=bracket,
    )
    if broker_connection is not None and broker_connection.owner_id != owner.pk:
        raise OrderInputError("that broker connection belongs to someone else")
    if strategy is not None and strategy.owner_id != owner.pk:
        raise OrderInputError("that strategy belongs to someone else")
    client_order_id = client_order_id or order_client_id(strategy=strategy, signal=signal, leg=leg)
    existing = Order.with_replays.by_client_order_id(client_order_id).first()
    if existing is not None:
        return _same_intent(existing, owner=owner, broker=broker, clock=clock)

    if side == OrderSide.SELL and position is None and strategy is None:
        # Long-only: a SELL closes (part of) an open position, and a manual one names it (the portfolio's
        # manual_order_place finds it). Without one the broker would go short, so nothing is recorded or sent.
        raise OrderInputError("a SELL must name the open position it closes (no short selling)")
    clock = clock or WallClock()
    broker = broker or broker_for(broker_connection, clock=clock, bar_size=strategy.bar_size if strategy else None)
    refusal = order_guard(
        broker=broker,
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        tif=tif,
        leg=leg,
        bracket=bracket,
        strategy=strategy,
        clock=clock,
    )
    if not refusal and broker_connection is not None:
        refusal = _drift_halt(broker_connection, symbol, side)
    cap_note = ""
    source = source or (OrderSource.STRATEGY if strategy is not None else OrderSource.MANUAL)
    sells_position = side == OrderSide.SELL and position is not None
    try:
        # An exit of a position is checked and recorded under the position's lock, so two exits placed at once
        # (a strategy's SELL and the stop watch, say) see each other and cannot both sell the same shares.
        # when sells_position, `position` is not None
        exited = cast(PositionLike, position)
        with lock(f"position-exit:{exited.pk}", ttl=30, wait=30) if sells_position else contextlib.nullcontext():
            if sells_position and not refusal:
                refusal = position_exit_refusal(position=exited, quantity=quantity)
            if side == OrderSide.SELL and not refusal:  # our books allow it: now what the broker holds bounds it
                quantity, refusal, cap_note = _broker_cap(broker, broker_connection, symbol, quantity)
            order = _record(
                owner=owner,
                broker_connection=broker_connection,
                symbol=symbol,
                side=side,
                quantity=quantity,
                order_type=order_type,
                limit_price=limit_price,
                stop_price=stop_price,
                tif=tif,
                strategy=strategy,
                signal=signal,
                leg=leg,
                bracket=bracket,
                source=source,
                client_order_id=client_order_id,
                position=position,
            )
    except IntegrityError:
        # the same intent recorded by a concurrent caller a moment ago
        return _same_intent(Order.with_replays.get(client_order_id=client_order_id), owner=owner, broker=broker)
    if refusal:
        _reject_group(order, refusal)
        return order
    return _send(order, broker, note=cap_note)


def _drift_halt(broker_connection: BrokerConnection, symbol: Symbol, side: str) -> str:
    """Why a drifted symbol takes no order now, or "": read at send time, not from the caller's copy."""
    halted = (
        BrokerConnection.with_replays.filter(pk=broker_connection.pk).values_list("drift_halted", flat=True).first()
    )
    if symbol.symbol not in (halted or []):
        return ""
    what = "new entries are halted" if side == OrderSide.BUY else "exits wait"
    return (
        f"our {symbol.symbol} books differ from the broker's: {what} until the difference is resolved "
        "(see the portfolio page)"
    )


def _broker_cap(
    broker: Broker, broker_connection: BrokerConnection | None, symbol: Symbol, quantity: Decimal
) -> tuple[Decimal, str, str]:
    """A SELL never sells more than the broker holds, less what our exits working there may sell already: at IBKR
    the rest would open a short. Returns the quantity to send, the refusal ("" when it may go) and a note when the
    quantity was cut."""
    try:
        held = sum(
            (
                Decimal(p.quantity)
                for p in broker.positions()
                if p.symbol == symbol.symbol or (symbol.conid and p.conid == symbol.conid)
            ),
            Decimal(0),
        )
    except BrokerError as exc:
        return quantity, f"not sent: the broker's {symbol.symbol} holding could not be read to cap the sale: {exc}", ""
    working = Order.with_replays.filter(
        broker_connection=broker_connection, symbol=symbol, side=OrderSide.SELL, parent__isnull=True
    ).exclude(status__in=TERMINAL_STATUSES)
    in_flight = sum((o.quantity - o.filled_quantity for o in working), Decimal(0))
    available = held - in_flight
    if available <= 0:
        pending = f" and exits for {in_flight.normalize():f} are working there" if in_flight else ""
        return (
            quantity,
            f"the broker holds {held.normalize():f} {symbol.symbol}{pending}: selling {quantity.normalize():f} "
            "would open a short",
            "",
        )
    if quantity > available:
        return available, "", f"cut from {quantity.normalize():f} to the {available.normalize():f} the broker holds"
    return quantity, "", ""


def position_exit_refusal(*, position: PositionLike, quantity: Decimal) -> str:
    """Why selling `quantity` of `position` would sell shares it no longer has, or "". The product is long-only:
    the shares still held, less what earlier exits of the position that are still working may sell, bound a new
    exit (a bracket's own stop and target are left out: an exit cancels them first)."""
    # the Position model is portfolio's, a layer above: orders knows it only by its PositionLike shape
    positions = type(position).with_replays  # type: ignore[attr-defined]
    held: Decimal = positions.filter(pk=position.pk).values_list("quantity", flat=True).first() or Decimal(0)
    working = Order.with_replays.filter(position_id=position.pk, side=OrderSide.SELL, parent__isnull=True).exclude(
        status__in=TERMINAL_STATUSES
    )
    in_flight = sum((order.quantity - order.filled_quantity for order in working), Decimal(0))
    if quantity <= held - in_flight:
        return ""
    held, in_flight, quantity = (amount.normalize() for amount in (held, in_flight, quantity))
    if in_flight:
        refs = ", ".join(working.values_list("client_order_id", flat=True))
        return (
            f"the position holds {held:f} and exits for {in_flight:f} are still working ({refs}): selling "
            f"{quantity:f} more would go short"
        )
    return f"the position holds {held:f}: selling {quantity:f} would go short"


def _same_intent(order: Order, *, owner: User, broker: Broker | None, clock: MarketClock | None = None) -> Order:
    if order.owner_id != owner.pk:
        raise OrderInputError("that client order id is taken")
    return order_reconcile(order=order, broker=broker, clock=clock)


def _record(
    *,
    owner: User,
    broker_connection: BrokerConnection | None,
    symbol: Symbol,
    side: str,
    quantity: Decimal,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    tif: str,
    strategy: StrategyLike | None,
    signal: TradingSignal | None,
    leg: str,
    bracket: Bracket | None,
    source: str,
    client_order_id: str,
    position: PositionLike | None,
) -> Order:
    common = {
        "owner": owner,
        "broker_connection": broker_connection,
        "strategy": strategy,
        "signal": signal,
        "source": source,
        "symbol": symbol,
        "conid": symbol.conid,
        "quantity": quantity,
        # A replay's copy of a strategy trades on the replay's own account: either marks the order as the replay's.
        "is_replay": bool(broker_connection and broker_connection.is_replay) or bool(strategy and strategy.is_replay),
    }
    with transaction.atomic():
        # ignore: the plugin wants portfolio's Position for `position`, a layer above, known here as a PositionLike
        order = Order.objects.create(  # type: ignore[misc]
            **common,
            leg=leg,
            client_order_id=client_order_id,
            side=side,
            order_type=order_type,
            limit_price=limit_price,
            stop_price=stop_price,
            time_in_force=tif,
            position=position,
            status=S.PENDING,
        )
        if bracket is not None:
            exit_side = OrderSide.SELL if side == OrderSide.BUY else OrderSide.BUY
            # Exits of a bracket outlive the entry's day: GTC.
            Order.objects.create(
                **common,
                parent=order,
                leg=OrderLeg.STOP,
                client_order_id=f"{client_order_id}{STOP_SUFFIX}",
                side=exit_side,
                order_type=OrderType.STOP,
                stop_price=bracket.stop_price,
                time_in_force=TimeInForce.GTC,
                status=S.PENDING,
            )
            Order.objects.create(
                **common,
                parent=order,
                leg=OrderLeg.TARGET,
                client_order_id=f"{client_order_id}{TARGET_SUFFIX}",
                side=exit_side,
                order_type=OrderType.LIMIT,
                limit_price=bracket.take_profit,
                time_in_force=TimeInForce.GTC,
                status=S.PENDING,
            )
    return order


def _request(order: Order) -> OrderRequest:
    return OrderRequest(
        client_order_id=order.client_order_id,
        conid=order.conid,
        symbol=order.symbol.symbol,
        side=order.side,
        quantity=order.quantity,
        order_type=order.order_type,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        tif=order.time_in_force,
        symbol_id=order.symbol_id,
    )


def _payload(request: OrderRequest) -> dict[str, Any]:
    return {
        key: (str(value) if isinstance(value, Decimal) else value)
        for key, value in request.__dict__.items()
        if value is not None
    }


def _children(order: Order) -> tuple[Order | None, Order | None]:
    kids = {child.leg: child for child in Order.with_replays.filter(parent=order)}
    return kids.get(OrderLeg.STOP), kids.get(OrderLeg.TARGET)


def _send(order: Order, broker: Broker, *, note: str = "") -> Order:
    stop, target = _children(order)
    group = [o for o in (order, stop, target) if o is not None]
    try:
        with transaction.atomic():  # the bracket is claimed whole or not at all
            order.transition_to(S.SUBMITTING, reason="claimed for sending")  # the conditional update: one winner
            for child in group[1:]:
                child.transition_to(S.SUBMITTING, reason="sent with its parent")
    except InvalidTransition:
        order.refresh_from_db()
        return order

    entry = _request(order)
    bracket = BracketRequest(entry=entry, stop=_request(stop), target=_request(target)) if stop and target else None
    Order.with_replays.filter(pk=order.pk).update(
        payload={"entry": _payload(entry)}
        | ({"stop": _payload(bracket.stop), "target": _payload(bracket.target)} if bracket else {})
    )
    try:
        with lock(
            f"broker:{broker.account_key}", ttl=broker.conversation_seconds, wait=broker.conversation_seconds + 5
        ):
            placement = broker.place_bracket(bracket) if bracket else broker.place(entry)
    except LockTimeout:
        _settle_group(group, S.REJECTED, "not sent: another order conversation held the account too long")
    except DuplicateClientOrderId as exc:
        _settle_group(group, S.UNKNOWN, f"the broker already holds this client order id: {exc.message}")
        return order_reconcile(order=order, broker=broker)
    except OutcomeUnknown as exc:
        _settle_group(group, S.UNKNOWN, f"reply lost: {exc.message}")
    except Rejected as exc:
        _settle_group(group, S.REJECTED, exc.reason)
        if isinstance(exc, PromptNotAnswered):
            _withdraw_if_held(order, broker)
    except BrokerError as exc:  # NotAuthenticated, RateLimited, Transient: refused before the order went out
        _settle_group(group, S.REJECTED, f"not sent: {exc.message}")
    else:
        now = timezone.now()
        for member, broker_id in zip(group, placement.broker_order_ids, strict=False):
            answered = "; ".join(placement.messages) if member is order else ""
            reason = f"accepted after answering {answered}" if answered else "accepted"
            if note and member is order:
                reason = f"{reason} ({note})"
            member.transition_to(S.SUBMITTED, reason=reason, broker_order_id=broker_id, submitted_at=now)
    order.refresh_from_db()
    return order


def _settle_group(group: list[Order], status: str, reason: str) -> None:
    for member in group:
        member.refresh_from_db()
        if member.can_transition_to(status):
            member.transition_to(status, reason=reason)


def _reject_group(order: Order, reason: str) -> None:
    stop, target = _children(order)
    _settle_group([o for o in (order, stop, target) if o is not None], S.REJECTED, reason)
    order.refresh_from_db()


def _withdraw_if_held(order: Order, broker: Broker) -> None:
    """After an unanswered prompt the order is recorded rejected; if the broker holds it anyway (found by its
    client order id), it is cancelled there so both books agree."""
    try:
        held = broker.find_order(order.client_order_id)
        if held and held.status in ("SUBMITTED", "PARTIALLY_FILLED"):
            broker.cancel(held.broker_order_id)
            Order.with_replays.filter(pk=order.pk).update(
                status_reason=f"{order.status_reason}; the broker held it as {held.broker_order_id}: cancelled"
            )
    except BrokerError as exc:
        logger.warning("order %s: could not check the broker after a prompt: %s", order.client_order_id, exc)


# --- reconcile -------------------------------------------------------------------------------------------------------


def _path(current: str, target: str) -> list[str]:
    """The shortest walk through the allowed transitions (e.g. UNKNOWN -> SUBMITTED -> CANCEL_REQUESTED)."""
    queue: deque[tuple[str, list[str]]] = deque([(current, [])])
    seen = {current}
    while queue:
        status, path = queue.popleft()
        for following in ORDER_TRANSITIONS[status]:
            if following == target:
                return [*path, following]
            if following not in seen:
                seen.add(following)
                queue.append((following, [*path, following]))
    return []


class _Reported(TypedDict, total=False):
    """What `_apply` copies from the broker's report onto the order row."""

    broker_order_id: str
    filled_quantity: Decimal
    average_fill_price: Decimal


def _apply(order: Order, reported: BrokerOrder, *, reason: str = "") -> None:
    """Make our row say what the broker says: broker id, fills, status."""
    fields: _Reported = {}
    if reported.broker_order_id and order.broker_order_id != reported.broker_order_id:
        fields["broker_order_id"] = reported.broker_order_id
    filled = min(reported.filled_quantity, order.quantity)
    if reported.status == S.FILLED:
        filled = order.quantity
    if filled != order.filled_quantity:
        fields["filled_quantity"] = filled
    if reported.average_price and reported.average_price != order.average_fill_price:
        fields["average_fill_price"] = reported.average_price
    target = reported.status
    if target == order.status and target != S.PARTIALLY_FILLED:
        if fields:
            Order.with_replays.filter(pk=order.pk).update(**fields, updated_at=timezone.now())
            order.refresh_from_db()
        return
    if target == S.PARTIALLY_FILLED and order.status == S.PARTIALLY_FILLED and "filled_quantity" not in fields:
        return
    path = _path(order.status, target)
    if not path:
        logger.warning("order %s: broker says %s, ours is %s", order.client_order_id, target, order.status)
        return
    why = reason or reported.reason or f"broker reports {target.lower()}"
    for step in path[:-1]:
        order.transition_to(step, reason=why)
    order.transition_to(path[-1], reason=why, **fields)


def order_reconcile(*, order: Order, broker: Broker | None = None, clock: MarketClock | None = None) -> Order:
    """Bring one order (and its bracket) in line with the broker. Safe to call any time, from anywhere."""
    if order.parent_id:
        order_reconcile(order=cast(Order, order.parent), broker=broker, clock=clock)  # parent_id: it has one
        order.refresh_from_db()
        return order
    order.refresh_from_db()
    if order.is_terminal:
        return order
    broker = broker or broker_for(order.broker_connection, clock=clock)
    if order.status == S.PENDING:
        return _send(order, broker)  # recorded, never claimed: nothing went out yet
    if order.status == S.SUBMITTING:
        # Whoever claimed it holds the account lock while talking to the broker; once we get the lock, a row still
        # SUBMITTING means that process died between the POST and settling.
        with lock(
            f"broker:{broker.account_key}", ttl=broker.conversation_seconds, wait=broker.conversation_seconds + 5
        ):
            order.refresh_from_db()
        if order.status == S.SUBMITTING:
            stop, target = _children(order)
            group = [o for o in (order, stop, target) if o is not None]
            _settle_group(group, S.UNKNOWN, "the sending process stopped before recording the reply")
    order.refresh_from_db()
    if order.status == S.UNKNOWN:
        return _find_by_client_order_id(order, broker)
    if order.broker_order_id and order.is_open:
        reported = broker.order_status(order.broker_order_id)
        _apply(order, reported)
        for child in (
            Order.with_replays.filter(parent=order)
            .exclude(broker_order_id="")
            .filter(status__in=["SUBMITTED", "PARTIALLY_FILLED"])
        ):
            _apply(child, broker.order_status(child.broker_order_id))
    order.refresh_from_db()
    return order


def _find_by_client_order_id(order: Order, broker: Broker) -> Order:
    listed = broker.open_orders()
    found = next((b for b in listed if b.order_ref == order.client_order_id), None)
    stop, target = _children(order)
    if found is None:
        found_fill = next((e for e in broker.executions(days=2) if e.order_ref == order.client_order_id), None)
        if found_fill is None:
            _settle_group(
                [o for o in (order, stop, target) if o is not None],
                S.REJECTED,
                "not at the broker: no order or execution carries this client order id, so the POST never landed",
            )
            order.refresh_from_db()
            return order
        found = BrokerOrder(
            broker_order_id=found_fill.broker_order_id,
            order_ref=order.client_order_id,
            status=S.FILLED,
            filled_quantity=order.quantity,
            average_price=found_fill.price,
        )
    mismatch = _differs(order, found)
    if mismatch:
        # IBKR keeps a cOID for 24 h: after a database reset the same id can name someone else's order.
        _settle_group(
            [o for o in (order, stop, target) if o is not None],
            S.REJECTED,
            f"the broker's order with this client order id is a different order ({mismatch}); not ours",
        )
        order.refresh_from_db()
        return order
    _apply(order, found, reason="found at the broker by client order id")
    # Bracket children carry no client order id: they are the broker's orders whose parent is ours.
    kids = [b for b in listed if found.broker_order_id and b.parent_broker_order_id == found.broker_order_id]
    for child, wanted_type in ((stop, OrderType.STOP), (target, OrderType.LIMIT)):
        if child is None:
            continue
        child.refresh_from_db()
        match = next((b for b in kids if b.order_type == wanted_type), None)
        if match is not None:
            _apply(child, match, reason="found at the broker under its parent")
    order.refresh_from_db()
    return order


def _differs(order: Order, found: BrokerOrder) -> str:
    if found.side and found.side != order.side:
        return f"side {found.side}"
    if found.quantity and found.quantity != order.quantity:
        return f"quantity {found.quantity}"
    if found.conid and order.conid and found.conid != order.conid:
        return f"contract {found.conid}"
    return ""


# --- cancel ----------------------------------------------------------------------------------------------------------


def order_cancel(*, order: Order, broker: Broker | None = None, clock: MarketClock | None = None) -> Order:
    """Cancel at the broker (a bracket's exits go with their entry). A PENDING order was never sent: it is just
    marked cancelled. The broker's answer is an acknowledgement; the status that follows is polled."""
    order.refresh_from_db()
    if order.is_terminal:
        return order
    if order.status == S.PENDING:
        stop, target = _children(order)
        _settle_group([o for o in (order, stop, target) if o is not None], S.CANCELLED, "cancelled before sending")
        order.refresh_from_db()
        return order
    broker = broker or broker_for(order.broker_connection, clock=clock)
    if order.status in (S.SUBMITTING, S.UNKNOWN):
        order = order_reconcile(order=order, broker=broker)
        if order.is_terminal:
            return order
    if not order.broker_order_id:
        raise OrderInputError(f"order {order.client_order_id} has no broker order id yet; try again shortly")
    with lock(f"broker:{broker.account_key}", ttl=broker.conversation_seconds, wait=broker.conversation_seconds + 5):
        broker.cancel(order.broker_order_id)
    if order.status != S.CANCEL_REQUESTED:
        order.transition_to(S.CANCEL_REQUESTED, reason="cancel sent to the broker")
    return order_reconcile(order=order, broker=broker)


# --- sync ------------------------------------------------------------------------------------------------------------


#: how far back tracking looks for executions of orders whose fills it has not recorded (IBKR lists up to 7 days)
UNRECORDED_FILL_DAYS = 7


def orders_sync(
    *, broker_connection: BrokerConnection | None, broker: Broker | None = None, clock: MarketClock | None = None
) -> list[Trade]:
    """Poll the broker for every order of this connection that is not settled: reconcile the unknown ones, move
    statuses, and record executions as Trade rows (one per broker execution id). Returns the Trade rows created now
    (oldest first), which is what the portfolio books into positions and P&L."""
    ours = Order.with_replays.for_connection(broker_connection)
    # by the rows' own (wall-clock) update times, whatever clock the broker runs on
    missing = ours.fills_unrecorded(since=timezone.now() - dt.timedelta(days=UNRECORDED_FILL_DAYS))
    if not (ours.unsettled().exists() or ours.working().exists() or missing.exists()):
        return []
    broker = broker or broker_for(broker_connection, clock=clock)
    # A SUBMITTING order younger than a conversation is most likely being sent right now: leave it to its sender.
    in_flight_since = timezone.now() - dt.timedelta(seconds=broker.conversation_seconds)
    for order in ours.unsettled().parents().exclude(status=S.SUBMITTING, updated_at__gt=in_flight_since):
        try:
            order_reconcile(order=order, broker=broker)
        except (Transient, LockTimeout) as exc:  # the next poll tries again; the other orders go on now
            logger.warning("order %s: not reconciled this time: %s", order.client_order_id, exc)
    listed = {b.broker_order_id: b for b in broker.open_orders()}
    # A fill the order's status shows but no Trade records is looked for over a longer window.
    days = UNRECORDED_FILL_DAYS if missing.exists() else 2
    trades = _record_executions(broker.executions(days=days), ours)
    for order in ours.working().exclude(broker_order_id="").order_by("parent_id", "created_at"):
        reported = listed.get(order.broker_order_id)
        if reported is None:
            try:
                reported = broker.order_status(order.broker_order_id)
            except (Rejected, Transient) as exc:
                logger.warning("order %s: no status from the broker: %s", order.client_order_id, exc)
                continue
        _apply(order, reported)
    return trades


def _record_executions(executions: list[Execution], ours: OrderQuerySet) -> list[Trade]:
    known = set(
        Trade.with_replays.filter(broker_execution_id__in=[e.execution_id for e in executions]).values_list(
            "broker_execution_id", flat=True
        )
    )
    fresh = [e for e in executions if e.execution_id not in known]
    if not fresh:
        return []
    # only the orders these executions name, not the connection's whole history
    named = ours.filter(
        Q(broker_order_id__in={e.broker_order_id for e in fresh if e.broker_order_id})
        | Q(client_order_id__in={e.order_ref for e in fresh if e.order_ref})
    )
    by_broker_id, by_client_id = {}, {}
    order: Order | None
    for order in named:
        if order.broker_order_id:
            by_broker_id[order.broker_order_id] = order
        by_client_id[order.client_order_id] = order
    created = []
    for execution in sorted(fresh, key=lambda e: e.executed_at):
        order = by_broker_id.get(execution.broker_order_id) or by_client_id.get(execution.order_ref)
        if order is None:
            continue  # not ours: placed elsewhere (TWS, Mobile) on the same account
        try:
            with transaction.atomic():
                trade = Trade.objects.create(
                    order=order,
                    is_replay=order.is_replay,
                    quantity=execution.quantity,
                    price=execution.price,
                    commission=execution.commission,
                    executed_at=execution.executed_at,
                    broker_execution_id=execution.execution_id,
                )
        except IntegrityError:
            continue  # a concurrent sync recorded it first
        created.append(trade)
    return created
