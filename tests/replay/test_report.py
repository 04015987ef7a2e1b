"""Every report figure against values worked out by hand on small series (the arithmetic is in the comments)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from replays import report

# Four steps; 2020-01-01 .. 2024-01-01 is 1461 days = exactly 4 years of 365.25 days.
EQUITY = [100.0, 110.0, 99.0, 121.0]
DAYS = [dt.date(2020, 1, 1), dt.date(2021, 1, 1), dt.date(2022, 1, 1), dt.date(2024, 1, 1)]


def test_total_return_is_last_over_first_minus_one():
    # 121 / 100 - 1
    assert report.total_return(EQUITY) == pytest.approx(0.21)


def test_cagr_compounds_over_calendar_years():
    # (121/100) ** (1/4) - 1 = 1.1 ** 0.5 - 1 = 0.048808848...
    assert report.cagr(EQUITY, DAYS[0], DAYS[-1]) == pytest.approx(0.0488088482)


def test_cagr_is_undefined_for_a_single_day():
    assert report.cagr([100.0, 101.0], dt.date(2020, 1, 1), dt.date(2020, 1, 1)) is None


def test_drawdown_is_the_distance_below_the_running_peak():
    # peaks 100, 110, 110, 121 -> 0, 0, 99/110 - 1 = -0.1, 0
    assert report.drawdowns(EQUITY) == pytest.approx([0.0, 0.0, -0.1, 0.0])
    assert report.max_drawdown(EQUITY) == pytest.approx(0.1)


def test_max_drawdown_takes_the_deepest_fall_not_the_last():
    # peak 200 then 150 (-25 %), new peak 300 then 240 (-20 %)
    assert report.max_drawdown([100.0, 200.0, 150.0, 300.0, 240.0]) == pytest.approx(0.25)


def test_sharpe_annualises_mean_over_sample_deviation():
    # returns 0.1, -0.1, 121/99 - 1 = 2/9
    # mean = (2/9) / 3 = 2/27 = 0.0740740741
    # squared deviations: (0.1 - 2/27)^2 = 0.000672154, (-0.1 - 2/27)^2 = 0.030301783, (2/9 - 2/27)^2 = 0.021947874
    # sample variance = 0.052921811 / 2 = 0.026460905, sd = 0.162668...
    # 2/27 / 0.162668 * sqrt(252) = 0.455369 * 15.874508 = 7.2288
    assert report.sharpe(EQUITY, 252) == pytest.approx(7.2288, abs=1e-4)


@pytest.mark.parametrize(
    "equity",
    [pytest.param([100.0, 100.0, 100.0], id="flat"), pytest.param([100.0, 101.0], id="one-return")],
)
def test_sharpe_is_undefined_without_variation(equity):
    assert report.sharpe(equity, 252) is None


def test_exposure_is_the_share_of_steps_holding_a_position():
    # 3 of 5 steps hold shares
    assert report.exposure([0, 10, 20, 0, 5]) == pytest.approx(0.6)


def test_return_net_of_llm_cost_pays_the_bill_from_final_equity():
    # (121 - 1) / 100 - 1
    assert report.net_of_cost(EQUITY, 1.0) == pytest.approx(0.20)


def _at(day: int) -> dt.datetime:
    return dt.datetime(2024, 1, day, tzinfo=dt.UTC)


FILLS = [
    # Trip 1: 10 @ 100 and 10 @ 110 (average 105, stop 95), all 20 sold @ 120, fees 1 + 1 + 2.
    #   P&L = 20*120 - (1000 + 1100) - 4 = 296; risk = (105 - 95) * 20 = 200; R = 1.48
    report.Fill("BUY", Decimal(10), Decimal(100), Decimal(1), _at(2), stop_loss=Decimal(95)),
    report.Fill("BUY", Decimal(10), Decimal(110), Decimal(1), _at(3), stop_loss=Decimal(99)),
    report.Fill("SELL", Decimal(20), Decimal(120), Decimal(2), _at(4)),
    # Trip 2: 5 @ 50 (stop 48), sold @ 49, fees 1 + 1: P&L = 245 - 250 - 2 = -7; risk = 2 * 5 = 10; R = -0.7
    report.Fill("BUY", Decimal(5), Decimal(50), Decimal(1), _at(8), stop_loss=Decimal(48)),
    report.Fill("SELL", Decimal(5), Decimal(49), Decimal(1), _at(9)),
    # Trip 3: still open, counted in no closed-trade figure.
    report.Fill("BUY", Decimal(1), Decimal(10), Decimal(1), _at(10), stop_loss=Decimal(9)),
]


def test_round_trips_average_the_entry_and_charge_every_fee():
    trips = report.round_trips(FILLS)

    assert [t.is_closed for t in trips] == [True, True, False]
    first, second, _ = trips
    assert (first.entry_price, first.exit_price, first.quantity) == (Decimal(105), Decimal(120), Decimal(20))
    assert (first.fees, first.pnl) == (Decimal(4), Decimal(296))
    assert first.r_multiple == pytest.approx(1.48)
    assert second.pnl == Decimal(-7)
    assert second.r_multiple == pytest.approx(-0.7)


def test_win_rate_and_average_r_count_closed_trips_only():
    trips = report.round_trips(FILLS)

    assert report.win_rate(trips) == pytest.approx(0.5)
    assert report.average_r(trips) == pytest.approx((1.48 - 0.7) / 2)


def test_a_sell_larger_than_the_holding_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        report.round_trips([report.Fill("SELL", Decimal(1), Decimal(10), Decimal(0), _at(2))])


def test_buy_and_hold_buys_whole_shares_and_keeps_the_change():
    # 100 cash at 30: 3 shares, 10 left; then 10 + 3*33 = 109, 10 + 3*27 = 91
    assert report.buy_and_hold_equity([30.0, 33.0, 27.0], 100.0) == [100.0, 109.0, 91.0]


def test_calibration_counts_hits_per_confidence_bucket():
    closes = [10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 10.0]
    decisions = [
        report.Decision(0, "BUY", 0.55),  # close[2] = 12 > 10: hit
        report.Decision(1, "BUY", 0.58),  # close[3] = 11 = 11: miss
        report.Decision(2, "SELL", 0.85),  # close[4] = 10 < 12: hit
        report.Decision(3, "HOLD", 0.90),  # not a call: left out
        report.Decision(4, "BUY", 1.00),  # close[6] = 10 = 10: miss, in the top bucket
        report.Decision(5, "BUY", 0.70),  # no close 2 steps later: left out
    ]

    buckets = {b["label"]: b for b in report.calibration(decisions, closes, horizon=2)}

    assert (buckets["50%–60%"]["signals"], buckets["50%–60%"]["hits"]) == (2, 1)
    assert buckets["50%–60%"]["hit_rate"] == pytest.approx(0.5)
    assert buckets["50%–60%"]["average_confidence"] == pytest.approx(0.565)
    assert (buckets["80%–90%"]["signals"], buckets["80%–90%"]["hit_rate"]) == (1, 1.0)
    assert (buckets["90%–100%"]["signals"], buckets["90%–100%"]["hit_rate"]) == (1, 0.0)
    assert buckets["70%–80%"]["signals"] == 0 and buckets["70%–80%"]["hit_rate"] is None


def test_figures_gathers_every_number_for_one_curve():
    trips = report.round_trips(FILLS)

    out = report.figures(
        equity=EQUITY,
        days=DAYS,
        bar_size="1d",
        position_quantities=[0, 10, 0, 0],
        trips=trips,
        fees=11.0,
        llm_cost=1.0,
    )

    assert out["total_return"] == pytest.approx(0.21)
    assert out["cagr"] == pytest.approx(math.sqrt(1.1) - 1)
    assert out["max_drawdown"] == pytest.approx(0.1)
    assert out["trades"] == 2
    assert out["win_rate"] == pytest.approx(0.5)
    assert out["exposure"] == pytest.approx(0.25)
    assert out["return_net_of_llm_cost"] == pytest.approx(0.20)


def test_plot_is_a_png():
    png = report.plot_png(DAYS, {"strategy": EQUITY, "buy and hold": [100.0, 90.0, 95.0, 130.0]}, title="t")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_buy_and_hold_figures_have_no_trade_statistics():
    out = report.figures(equity=[100.0, 109.0, 91.0], days=DAYS[:3], bar_size="1d")

    assert (out["trades"], out["win_rate"], out["average_r"]) == (None, None, None)
    assert out["exposure"] == 1.0 and out["fees"] == 0.0
