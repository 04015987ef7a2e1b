"""The replay report's figures, as pure functions of plain series, so each can be checked by hand.

Conventions (the report page states them too):
- returns are fractions (0.1 = +10 %); max drawdown is a positive fraction of the running peak;
- Sharpe uses per-step simple returns, a zero risk-free rate and the sample standard deviation (ddof = 1),
  annualised by the bar size's periods per year;
- CAGR counts calendar days between the first and last step (365.25 a year);
- a round trip runs from a flat position to the next flat position; its R multiple is its P&L after fees divided
  by the money at risk when it opened (entry price − stop, times the quantity bought);
- calibration asks, for every BUY or SELL signal, whether the close `horizon` steps later moved its way.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PERIODS_PER_YEAR = {
    "1min": 252 * 390,
    "5min": 252 * 78,
    "15min": 252 * 26,
    "30min": 252 * 13,
    "1h": 252 * 7,
    "4h": 252 * 2,
    "1d": 252,
    "1w": 52,
}
CONFIDENCE_EDGES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CALIBRATION_HORIZON = 5


def total_return(equity: Sequence[float]) -> float:
    return equity[-1] / equity[0] - 1


def cagr(equity: Sequence[float], first_day: dt.date, last_day: dt.date) -> float | None:
    years = (last_day - first_day).days / 365.25
    if years <= 0 or equity[-1] <= 0:
        return None
    return (equity[-1] / equity[0]) ** (1 / years) - 1


def drawdowns(equity: Sequence[float]) -> list[float]:
    """Each step's distance below the running peak, as a fraction (0 at a new high, negative below it)."""
    peak = -math.inf
    out = []
    for value in equity:
        peak = max(peak, value)
        out.append(value / peak - 1)
    return out


def max_drawdown(equity: Sequence[float]) -> float:
    return -min(drawdowns(equity))


def step_returns(equity: Sequence[float]) -> list[float]:
    return [b / a - 1 for a, b in zip(equity, equity[1:], strict=False)]


def sharpe(equity: Sequence[float], periods_per_year: int) -> float | None:
    returns = step_returns(equity)
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if variance == 0:
        return None
    return mean / math.sqrt(variance) * math.sqrt(periods_per_year)


def exposure(position_quantities: Sequence[float]) -> float:
    """The share of steps that ended holding a position."""
    return sum(1 for q in position_quantities if q > 0) / len(position_quantities)


def net_of_cost(equity: Sequence[float], cost: float) -> float:
    """Total return after paying `cost` (the LLM bill) out of the final equity."""
    return (equity[-1] - cost) / equity[0] - 1


@dataclass(frozen=True)
class Fill:
    side: str  # "BUY" or "SELL"
    quantity: Decimal
    price: Decimal
    commission: Decimal
    at: dt.datetime
    stop_loss: Decimal | None = None  # the entry signal's stop, for the R multiple


@dataclass
class RoundTrip:
    opened_at: dt.datetime
    entry_price: Decimal  # average cost of every buy in the trip
    quantity: Decimal  # shares bought in the trip
    stop_loss: Decimal | None
    closed_at: dt.datetime | None = None
    exit_price: Decimal | None = None  # average price of every sell in the trip
    fees: Decimal = Decimal(0)
    pnl: Decimal | None = None  # after fees; None while open
    r_multiple: float | None = None
    _cost: Decimal = field(default=Decimal(0), repr=False)
    _proceeds: Decimal = field(default=Decimal(0), repr=False)
    _sold: Decimal = field(default=Decimal(0), repr=False)

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


def round_trips(fills: Sequence[Fill]) -> list[RoundTrip]:
    """Group time-ordered long-only fills into round trips."""
    trips: list[RoundTrip] = []
    held = Decimal(0)
    trip: RoundTrip | None = None
    for fill in sorted(fills, key=lambda f: f.at):
        if fill.side == "BUY":
            if trip is None:
                trip = RoundTrip(
                    opened_at=fill.at, entry_price=fill.price, quantity=Decimal(0), stop_loss=fill.stop_loss
                )
                trips.append(trip)
            trip._cost += fill.quantity * fill.price
            trip.quantity += fill.quantity
            trip.entry_price = trip._cost / trip.quantity
            held += fill.quantity
        else:
            if trip is None or fill.quantity > held:
                raise ValueError(f"a sell of {fill.quantity} at {fill.at.isoformat()} exceeds the {held} held")
            trip._proceeds += fill.quantity * fill.price
            trip._sold += fill.quantity
            held -= fill.quantity
        trip.fees += fill.commission
        if held == 0:
            trip.closed_at = fill.at
            trip.exit_price = trip._proceeds / trip._sold
            trip.pnl = trip._proceeds - trip._cost - trip.fees
            if trip.stop_loss is not None and trip.entry_price > trip.stop_loss:
                trip.r_multiple = float(trip.pnl / ((trip.entry_price - trip.stop_loss) * trip.quantity))
            trip = None
    return trips


def win_rate(trips: Sequence[RoundTrip]) -> float | None:
    closed = [t for t in trips if t.is_closed]
    if not closed:
        return None
    return sum(1 for t in closed if t.pnl is not None and t.pnl > 0) / len(closed)


def average_r(trips: Sequence[RoundTrip]) -> float | None:
    values = [t.r_multiple for t in trips if t.is_closed and t.r_multiple is not None]
    return sum(values) / len(values) if values else None


def buy_and_hold_equity(closes: Sequence[float], cash: float) -> list[float]:
    """Whole shares bought at the first close with all the cash, held to the end, no fees."""
    shares = math.floor(cash / closes[0])
    left = cash - shares * closes[0]
    return [left + shares * close for close in closes]


@dataclass(frozen=True)
class Decision:
    index: int  # the step
    action: str
    confidence: float


def calibration(
    decisions: Sequence[Decision], closes: Sequence[float], *, horizon: int = CALIBRATION_HORIZON
) -> list[dict]:
    """Hit rate by confidence bucket. A BUY hits when the close `horizon` steps later is higher, a SELL when it
    is lower; signals without `horizon` later steps are left out."""
    buckets: list[dict[str, Any]] = [
        {"low": low, "high": high, "label": f"{low:.0%}–{high:.0%}", "signals": 0, "hits": 0, "_conf": 0.0}
        for low, high in zip(CONFIDENCE_EDGES, CONFIDENCE_EDGES[1:], strict=False)
    ]
    for decision in decisions:
        if decision.action not in {"BUY", "SELL"} or decision.index + horizon >= len(closes):
            continue
        later, now = closes[decision.index + horizon], closes[decision.index]
        hit = later > now if decision.action == "BUY" else later < now
        bucket = next(
            b for b in buckets if b["low"] <= decision.confidence < b["high"] or b["high"] == decision.confidence == 1
        )
        bucket["signals"] += 1
        bucket["hits"] += int(hit)
        bucket["_conf"] += decision.confidence
    for bucket in buckets:
        conf = bucket.pop("_conf")
        bucket["hit_rate"] = bucket["hits"] / bucket["signals"] if bucket["signals"] else None
        bucket["average_confidence"] = conf / bucket["signals"] if bucket["signals"] else None
    return buckets


def figures(
    *,
    equity: Sequence[float],
    days: Sequence[dt.date],
    bar_size: str,
    position_quantities: Sequence[float] | None = None,
    trips: Sequence[RoundTrip] | None = None,
    fees: float = 0.0,
    llm_cost: float = 0.0,
) -> dict:
    """The report's figures for one equity curve (a replay, or buy-and-hold: no `trips`, so no trade figures)."""
    closed = [t for t in trips if t.is_closed] if trips is not None else None
    return {
        "start_equity": equity[0],
        "end_equity": equity[-1],
        "total_return": total_return(equity),
        "cagr": cagr(equity, days[0], days[-1]),
        "max_drawdown": max_drawdown(equity),
        "sharpe": sharpe(equity, PERIODS_PER_YEAR[bar_size]),
        "trades": len(closed) if closed is not None else None,
        "win_rate": win_rate(trips) if trips is not None else None,
        "average_r": average_r(trips) if trips is not None else None,
        "exposure": exposure(position_quantities) if position_quantities is not None else 1.0,
        "fees": fees,
        "llm_cost": llm_cost,
        "return_net_of_llm_cost": net_of_cost(equity, llm_cost),
    }


def plot_png(days: Sequence[dt.date], curves: dict[str, Sequence[float]], *, title: str) -> bytes:
    """Equity curves over a drawdown panel, as a PNG."""
    import matplotlib  # noqa: PLC0415  (start-up cost: only a replay report draws, so web and worker load it on first use)

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415  (after matplotlib.use: the Agg backend must be chosen first)

    fig = Figure(figsize=(10, 5.5), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    for name, curve in curves.items():
        top.plot(days, curve, label=name, linewidth=1.3)
        bottom.plot(days, [100 * d for d in drawdowns(curve)], label=name, linewidth=1.0)
    top.set_title(title, fontsize=11)
    top.set_ylabel("Equity")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    top.grid(alpha=0.25)
    bottom.set_ylabel("Drawdown %")
    bottom.grid(alpha=0.25)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
