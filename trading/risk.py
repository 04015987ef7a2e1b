"""Position sizing and the risk gate. The analyst proposes; this decides, and the analyst cannot override it.

Entries (BUY) pass every check or place nothing; exits (SELL) are always allowed, once: not while an earlier exit
of the position is still working. Every decision carries its
checks and arithmetic so the lineage shows why an order was or was not placed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q, Sum

from market.clock import MarketClock
from orders.models import Order, OrderSide, Trade
from orders.statuses import TERMINAL_STATUSES
from portfolio.models import Position
from portfolio.services import position_exit_working
from signals_app.models import SignalAction
from trading.models import Strategy

ZERO = Decimal(0)


@dataclass(frozen=True)
class Sizing:
    """risk per trade × equity ÷ (entry − stop), capped by buying power and the max position value, rounded down."""

    quantity: int
    equity: Decimal
    buying_power: Decimal
    entry: Decimal
    stop: Decimal
    risk_per_trade: Decimal
    max_position_value: Decimal
    held_value: Decimal
    risk_amount: Decimal
    risk_per_share: Decimal
    by_risk: int
    by_buying_power: int
    by_max_position_value: int
    reason: str = ""


def _whole(value: Decimal) -> int:
    return max(0, int(value.to_integral_value(rounding=ROUND_FLOOR)))


def position_size(
    *,
    equity: Decimal,
    buying_power: Decimal,
    entry: Decimal,
    stop: Decimal,
    risk_per_trade: Decimal,
    max_position_value: Decimal,
    held_value: Decimal = ZERO,
) -> Sizing:
    """Whole shares to buy. Zero means no order, and `reason` says which limit made it zero (never a minimum of one)."""
    equity, buying_power, entry, stop = (Decimal(str(v)) for v in (equity, buying_power, entry, stop))
    risk_per_share = entry - stop
    risk_amount = equity * Decimal(str(risk_per_trade))
    by_risk = 0 if entry <= 0 or risk_per_share <= 0 else _whole(risk_amount / risk_per_share)
    by_buying_power = _whole(buying_power / entry) if entry > 0 else 0
    room = Decimal(str(max_position_value)) - held_value
    by_max_value = _whole(room / entry) if entry > 0 else 0
    quantity = min(by_risk, by_buying_power, by_max_value)
    reason = ""
    if quantity == 0:
        if entry <= 0 or risk_per_share <= 0:
            reason = f"the stop ({stop}) is not below the entry ({entry})"
        elif by_risk == 0:
            reason = f"risk budget {risk_amount:.2f} is less than one share's risk {risk_per_share}"
        elif by_buying_power == 0:
            reason = f"buying power {buying_power:.2f} is less than one share at {entry}"
        else:
            reason = f"max position value leaves {room:.2f}, less than one share at {entry}"
    return Sizing(
        quantity=quantity,
        equity=equity,
        buying_power=buying_power,
        entry=entry,
        stop=stop,
        risk_per_trade=Decimal(str(risk_per_trade)),
        max_position_value=Decimal(str(max_position_value)),
        held_value=held_value,
        risk_amount=risk_amount.quantize(Decimal("0.01")),
        risk_per_share=risk_per_share,
        by_risk=by_risk,
        by_buying_power=by_buying_power,
        by_max_position_value=by_max_value,
        reason=reason,
    )


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class RiskDecision:
    """What the gate allows: `allowed` with `quantity` to place, or refused with the reasons."""

    action: str
    allowed: bool
    quantity: Decimal = ZERO
    exit_position_id: int | None = None
    checks: list[Check] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    sizing: Sizing | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["quantity"] = str(self.quantity)
        return data


@dataclass(frozen=True)
class Account:
    """What the broker says the account has (from its account summary)."""

    net_liquidation: Decimal
    buying_power: Decimal
    cash: Decimal = ZERO


def day_bounds(clock: MarketClock, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The clock's trading day as [start, end) in UTC."""
    day = clock.trading_day(tz)
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def risk_check(
    *, strategy: Strategy, signal, clock: MarketClock, account: Account | None, kill_switch: bool | None = None
) -> RiskDecision:
    """Decide what the signal may do. HOLD does nothing; SELL exits the open position if there is one; BUY must pass
    every check (kill switches, confidence floor, open positions, orders today, daily loss, sizing)."""
    action = signal.action
    if action == SignalAction.HOLD:
        return RiskDecision(action=action, allowed=False, refusals=["HOLD: nothing to do"])

    position = Position.with_replays.for_strategy(strategy).open().filter(symbol_id=signal.symbol_id).first()
    if action == SignalAction.SELL:
        if position is None:
            return RiskDecision(action=action, allowed=False, refusals=["SELL with no open position: nothing to sell"])
        # An earlier exit still working would make this one sell shares already on their way out; the order
        # service would refuse it, but as a REJECTED order (and a notification) on every run until that exit settles.
        working = position_exit_working(position=position)
        if working is not None:
            return RiskDecision(
                action=action,
                allowed=False,
                exit_position_id=position.pk,
                checks=[Check("exit", False, f"exit already working: order {working.client_order_id}")],
                refusals=[f"exit already working: order {working.client_order_id}"],
            )
        return RiskDecision(
            action=action,
            allowed=True,
            quantity=position.quantity,
            exit_position_id=position.pk,
            checks=[Check("exit", True, "exits are always allowed")],
        )

    checks: list[Check] = []
    global_kill = settings.TRADING_KILL_SWITCH if kill_switch is None else kill_switch
    checks.append(Check("global_kill_switch", not global_kill, "TRADING_KILL_SWITCH is on" if global_kill else "off"))
    checks.append(Check("strategy_kill_switch", not strategy.kill_switch, "on" if strategy.kill_switch else "off"))
    confidence = Decimal(str(signal.confidence))
    checks.append(
        Check(
            "confidence_floor",
            confidence >= strategy.min_confidence,
            f"confidence {confidence} vs floor {strategy.min_confidence}",
        )
    )
    open_positions = Position.with_replays.for_strategy(strategy).open().count()
    pending_entries = (
        Order.with_replays.filter(strategy=strategy, side=OrderSide.BUY).entries().exclude(status__in=TERMINAL_STATUSES)
    ).count()  # sent or about to be: an entry in flight holds its slot
    checks.append(
        Check(
            "max_open_positions",
            open_positions + pending_entries < strategy.max_open_positions,
            f"{open_positions} open + {pending_entries} pending entries vs max {strategy.max_open_positions}",
        )
    )
    start, end = day_bounds(clock, strategy.symbol.time_zone)
    # A strategy order is dated by its signal (the market clock's time, which in playback is not the wall clock's);
    # an order without a signal (the stop watch) by when it was made. A bracket counts once: its exits are children.
    orders_today = (
        Order.with_replays.filter(strategy=strategy, parent__isnull=True)
        .filter(
            Q(signal__generated_at__gte=start, signal__generated_at__lt=end)
            | Q(signal__isnull=True, created_at__gte=start, created_at__lt=end)
        )
        .count()
    )
    checks.append(
        Check(
            "max_orders_per_day",
            orders_today < strategy.max_orders_per_day,
            f"{orders_today} orders on {clock.trading_day(strategy.symbol.time_zone)} vs max "
            f"{strategy.max_orders_per_day}",
        )
    )
    realised_today = (
        Trade.with_replays.filter(order__strategy=strategy, executed_at__gte=start, executed_at__lt=end).aggregate(
            total=Sum("realized_pnl")
        )["total"]
        or ZERO
    )
    checks.append(
        Check(
            "daily_loss_limit",
            -realised_today < strategy.daily_loss_limit,
            f"realised today {realised_today:.2f} vs loss limit {strategy.daily_loss_limit}",
        )
    )

    sizing = None
    if account is None:
        checks.append(Check("sizing", False, "no account summary from the broker: cannot size"))
    else:
        held_value = position.quantity * Decimal(str(signal.entry_price)) if position is not None else ZERO
        sizing = position_size(
            equity=account.net_liquidation,
            buying_power=account.buying_power,
            entry=Decimal(str(signal.entry_price)),
            stop=Decimal(str(signal.stop_loss)),
            risk_per_trade=strategy.risk_per_trade,
            max_position_value=strategy.max_position_value,
            held_value=held_value,
        )
        checks.append(Check("sizing", sizing.quantity > 0, sizing.reason or f"{sizing.quantity} shares"))

    refusals = [f"{check.name}: {check.detail}" for check in checks if not check.passed]
    return RiskDecision(
        action=action,
        allowed=not refusals,
        quantity=Decimal(sizing.quantity) if sizing and not refusals else ZERO,
        checks=checks,
        refusals=refusals,
        sizing=sizing,
    )
