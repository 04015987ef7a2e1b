"""Replays through the live executor on real SPY history: no look-ahead, the LLM cache, the budget, the marking."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from brokers.models import BrokerConnection
from lineage.models import LineageRecord
from market.models import Bar, BarSize
from orders.models import Order, Trade
from portfolio.models import Position
from replays.models import ReplayStatus
from replays.services import replay_create, replay_delete, replay_lineage_prune, replay_run
from signals_app.models import Analyst, TradingSignal
from trading.models import Strategy, StrategyExecution

DECISION_FIELDS = ("bar_timestamp", "action", "confidence", "entry_price", "stop_loss", "take_profit")
ACCOUNT_FIELDS = ("cash", "position_quantity", "equity")


def _replay(strategy, start, end, **options):
    replay = replay_create(owner=strategy.owner, strategy=strategy, start=start, end=end, **options)
    return replay_run(replay=replay)


def _rows(replay, fields):
    return list(replay.steps.order_by("index").values_list(*fields))


def _scramble_bars_after(symbol, cut: dt.datetime, seed: int = 7) -> None:
    """Shuffle the OHLCV of every bar after `cut` among those dates and scale them: a different future."""
    bars = list(Bar.objects.for_symbol(symbol).of_size(BarSize.D1).after(cut).chronological())
    values = [(b.open, b.high, b.low, b.close, b.volume) for b in bars]
    random.Random(seed).shuffle(values)
    for bar, (o, h, lo, c, v) in zip(bars, values, strict=True):
        bar.open, bar.high, bar.low, bar.close, bar.volume = (x * Decimal("0.8") for x in (o, h, lo, c, v))
    Bar.objects.bulk_update(bars, ["open", "high", "low", "close", "volume"])


@pytest.mark.django_db(transaction=False)
def test_decisions_up_to_t_are_identical_when_every_later_bar_is_scrambled(rules_strategy):
    # given a replay of real SPY history with the rules analyst, trading through the simulated broker
    start, end, cut = dt.date(2010, 1, 4), dt.date(2010, 3, 12), dt.datetime(2010, 2, 16, tzinfo=dt.UTC)
    first = _replay(rules_strategy, start, end, render_charts=False)
    assert first.status == ReplayStatus.COMPLETED
    assert {"BUY", "SELL"} <= {a for (a,) in _rows(first, ["action"])}, "the window must hold real decisions"

    # when every bar after t is scrambled and the same replay runs again
    _scramble_bars_after(rules_strategy.symbol, cut)
    second = _replay(rules_strategy, start, end, render_charts=False)

    # then every decision, fill and account value up to t is the same, and the future did change what followed
    fields = DECISION_FIELDS + ACCOUNT_FIELDS
    before = [row for row in _rows(first, fields) if row[0] <= cut]
    after_first = [row for row in _rows(first, fields) if row[0] > cut]
    assert len(before) >= 25
    assert [row for row in _rows(second, fields) if row[0] <= cut] == before
    assert [row for row in _rows(second, fields) if row[0] > cut] != after_first


def test_second_replay_of_a_range_asks_the_analyst_nothing_costs_nothing_and_decides_the_same(
    rules_strategy, stub_anthropic
):
    # given an Anthropic replay that paid for every analysis
    start, end = dt.date(2010, 3, 1), dt.date(2010, 3, 5)
    first = _replay(rules_strategy, start, end, analyst=Analyst.ANTHROPIC, render_charts=True)
    sent = len(stub_anthropic.requests)
    assert first.status == ReplayStatus.COMPLETED
    assert first.analyst_calls == sent == first.steps_total == 5
    assert first.llm_cost_usd > 0
    assert first.input_tokens == sent * stub_anthropic.INPUT_TOKENS
    assert stub_anthropic.requests[0]["messages"][0]["content"][0]["type"] == "image"  # charts went along

    # when the same range is replayed again through the LLM cache
    second = _replay(rules_strategy, start, end, analyst=Analyst.ANTHROPIC, render_charts=True)

    # then nothing reached the analyst, it cost $0, and every decision is the same
    assert len(stub_anthropic.requests) == sent
    assert (second.analyst_calls, second.cache_hits, second.llm_cost_usd) == (0, second.steps_total, Decimal(0))
    assert _rows(second, DECISION_FIELDS + ACCOUNT_FIELDS) == _rows(first, DECISION_FIELDS + ACCOUNT_FIELDS)
    assert second.report["columns"]["replay"]["llm_cost"] == 0


def test_cache_only_replay_stops_failed_at_the_first_miss_without_asking_the_analyst(rules_strategy, stub_anthropic):
    replay = _replay(
        rules_strategy, dt.date(2010, 3, 1), dt.date(2010, 3, 5), analyst=Analyst.ANTHROPIC, llm_cache="only"
    )

    assert stub_anthropic.requests == []
    assert (replay.status, replay.analyst_calls, replay.steps_done) == (ReplayStatus.FAILED, 0, 1)
    assert "--llm-cache only" in replay.error and "2010-03-01" in replay.error
    assert replay.steps.get().execution_status == "FAILED"


def test_budget_stops_the_replay_before_it_spends_more(rules_strategy, stub_anthropic):
    # given a budget of two and a half analyses (each stub answer costs the same)
    per_call = _replay(
        rules_strategy, dt.date(2010, 3, 1), dt.date(2010, 3, 1), analyst=Analyst.ANTHROPIC, llm_cache="off"
    ).llm_cost_usd
    budget = per_call * Decimal("2.5")
    stub_anthropic.requests.clear()

    # when a 10-step replay runs with the cache off
    replay = _replay(
        rules_strategy,
        dt.date(2010, 3, 1),
        dt.date(2010, 3, 12),
        analyst=Analyst.ANTHROPIC,
        llm_cache="off",
        budget_usd=budget,
    )

    # then it stopped after two analyses, within the budget, and says so
    assert replay.status == ReplayStatus.BUDGET_STOPPED
    assert len(stub_anthropic.requests) == replay.analyst_calls == replay.steps_done == 2
    assert replay.llm_cost_usd == 2 * per_call <= budget
    assert replay.report["columns"]["replay"]["llm_cost"] == pytest.approx(float(2 * per_call))


def test_rules_baseline_runs_beside_an_llm_replay_for_the_side_by_side_report(rules_strategy, stub_anthropic):
    replay = _replay(
        rules_strategy, dt.date(2010, 3, 1), dt.date(2010, 3, 5), analyst=Analyst.ANTHROPIC, render_charts=False
    )

    baseline = replay.baselines.get()
    assert (baseline.analyst, baseline.status, baseline.steps_done) == (Analyst.RULES, ReplayStatus.COMPLETED, 5)
    columns = replay.report["columns"]
    assert set(columns) == {"replay", "buy_and_hold", "rules"}
    assert columns["rules"]["end_equity"] == float(baseline.steps.order_by("-index").first().equity)
    assert columns["buy_and_hold"]["start_equity"] == float(replay.starting_cash)


def test_anonymised_replay_shows_the_analyst_no_ticker_and_no_dates(rules_strategy, stub_anthropic):
    replay = _replay(
        rules_strategy, dt.date(2010, 3, 1), dt.date(2010, 3, 3), analyst=Analyst.ANTHROPIC, anonymise=True
    )

    assert replay.status == ReplayStatus.COMPLETED and replay.report["anonymised"] is True
    for body in stub_anthropic.requests:
        text = stub_anthropic.prompt(body) + " ".join(block["text"] for block in body["system"])
        assert "SPY" not in text and "S&P" not in text
        assert "2010" not in text and "t-0" in text
        assert all(block["type"] == "text" for block in body["messages"][0]["content"])  # no chart: axes carry dates


def test_replay_rows_are_marked_and_live_querysets_leave_them_out(rules_strategy):
    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 2, 12), render_charts=False)
    shadow = replay.shadow_strategy

    assert shadow.replay_of == replay and shadow.is_replay and shadow.periodic_task is None
    assert replay.broker_connection.is_replay
    assert StrategyExecution.with_replays.filter(strategy=shadow, trigger="replay").count() == replay.steps_total
    assert (
        Order.with_replays.filter(strategy=shadow).exists() and Position.with_replays.filter(strategy=shadow).exists()
    )
    assert list(Strategy.objects.all()) == [rules_strategy]
    assert not StrategyExecution.objects.exists()
    assert not Position.objects.exists()
    assert not LineageRecord.objects.exists() and LineageRecord.with_replays.of_replays().exists()
    assert not BrokerConnection.objects.filter(pk=replay.broker_connection_id).exists()
    assert not Order.objects.exists() and not Trade.objects.exists()
    assert not TradingSignal.objects.exists() and TradingSignal.with_replays.filter(strategy=shadow).exists()


def test_pruning_deletes_replay_lineage_and_keeps_the_report(rules_strategy):
    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 1, 15), render_charts=False)

    deleted = replay_lineage_prune(older_than=dt.timedelta(0))

    assert deleted == 9 * replay.steps_total
    assert not LineageRecord.with_replays.of_replays().exists()
    replay.refresh_from_db()
    assert replay.lineage_pruned_at is not None and replay.report["columns"]["replay"]["end_equity"] > 0


def test_deleting_a_replay_removes_everything_it_made(rules_strategy):
    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 1, 25), render_charts=False)
    shadow_id, connection_id = replay.shadow_strategy_id, replay.broker_connection_id

    replay_delete(replay=replay)

    assert not Strategy.with_replays.filter(pk=shadow_id).exists()
    assert not BrokerConnection.with_replays.filter(pk=connection_id).exists()
    assert not Order.with_replays.filter(strategy_id=shadow_id).exists()
    assert not Order.with_replays.filter(strategy__isnull=True).exists()
    assert not Position.with_replays.filter(strategy__isnull=True).exists()
    assert Strategy.objects.filter(pk=rules_strategy.pk).exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"end": dt.date(2009, 12, 31)}, "end", id="end-before-start"),
        pytest.param({"start": dt.date(2030, 1, 1), "end": dt.date(2030, 2, 1)}, "start", id="no-bars"),
        pytest.param({"llm_cache": "sometimes"}, "llm_cache", id="bad-cache-mode"),
        pytest.param({"budget_usd": Decimal("-1")}, "budget_usd", id="negative-budget"),
        pytest.param({"analyst": Analyst.RULES, "prompt_version": 99}, "prompt_version", id="no-such-prompt"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(rules_strategy, options, field):
    from replays.models import Replay

    arguments = {"start": dt.date(2010, 1, 4), "end": dt.date(2010, 2, 1), **options}
    with pytest.raises(ValidationError) as caught:
        replay_create(owner=rules_strategy.owner, strategy=rules_strategy, **arguments)
    assert field in caught.value.message_dict
    assert not Replay.objects.exists()


@pytest.mark.parametrize(
    ("analyst", "unset", "message"),
    [
        pytest.param(Analyst.ANTHROPIC, "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY is not set", id="anthropic-no-key"),
        pytest.param(Analyst.OPENAI, "OPENAI_BASE_URL", "OPENAI_BASE_URL is not set", id="openai-no-server"),
    ],
)
def test_an_llm_replay_without_its_analyst_configured_is_refused_up_front(
    rules_strategy, settings, analyst, unset, message
):
    from replays.models import Replay

    setattr(settings, unset, "")

    with pytest.raises(ValidationError) as caught:
        replay_create(
            owner=rules_strategy.owner,
            strategy=rules_strategy,
            start=dt.date(2010, 1, 4),
            end=dt.date(2010, 2, 1),
            analyst=analyst,
        )

    assert message in caught.value.message_dict["analyst"][0]
    assert not Replay.objects.exists()


def test_a_cache_only_llm_replay_needs_no_key(rules_strategy, settings):
    settings.ANTHROPIC_API_KEY = ""

    replay = replay_create(
        owner=rules_strategy.owner,
        strategy=rules_strategy,
        start=dt.date(2010, 1, 4),
        end=dt.date(2010, 1, 8),
        analyst=Analyst.ANTHROPIC,
        llm_cache="only",
    )

    assert replay.status == ReplayStatus.PENDING


def test_another_users_strategy_cannot_be_replayed(rules_strategy, other_user):
    with pytest.raises(ValidationError, match="someone else"):
        replay_create(owner=other_user, strategy=rules_strategy, start=dt.date(2010, 1, 4), end=dt.date(2010, 2, 1))


def test_live_order_tracking_leaves_a_replays_working_order_alone(rules_strategy, settings, celery_eager):
    # given a replay that ended the day it placed a BUY, so its order is still working at its broker
    from trading.tasks import orders_track

    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 1, 4), render_charts=False)
    order = Order.with_replays.get(strategy=replay.shadow_strategy)
    assert order.is_open

    # when the live poller runs on the wall clock (whose stored bars would fill it at once)
    tracked = orders_track()

    # then the replay's account was not polled and its order is as the replay left it
    order.refresh_from_db()
    assert tracked == 0 and order.is_open and not order.trades.exists()
    assert not Order.objects.exists()


def test_scheduled_snapshots_and_reconciliation_leave_a_replays_simulated_account_alone(rules_strategy):
    # given a replay that ended the day it placed a BUY, still working at its simulated broker
    from brokers.models import SimOrder
    from portfolio.tasks import portfolio_snapshots

    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 1, 4), render_charts=False)
    assert SimOrder.objects.get(account__connection=replay.broker_connection).status == "SUBMITTED"

    # when the scheduled snapshots and reconciliation run on the wall clock (whose bars would fill it)
    portfolio_snapshots()

    # then the replay's broker ledger was not moved
    assert SimOrder.objects.get(account__connection=replay.broker_connection).status == "SUBMITTED"


def test_live_stop_watch_leaves_a_replays_position_alone(rules_strategy):
    # given a replay that bought on its first day and holds the position, its target long passed in real time
    from portfolio.services import stops_watch

    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 1, 5), render_charts=False)
    position = Position.with_replays.filter(strategy=replay.shadow_strategy).open().get()
    assert position.take_profit is not None
    orders_before = list(Order.with_replays.filter(strategy=replay.shadow_strategy).values_list("pk", "status"))

    # when the live stop/target watch runs
    exits = stops_watch()

    # then it placed no exit for the replay's position
    assert exits == []
    assert list(Order.with_replays.filter(strategy=replay.shadow_strategy).values_list("pk", "status")) == orders_before


def test_the_owners_live_portfolio_does_not_count_a_replays_account(rules_strategy):
    # given a replay that traded (a closed round trip and an open position) on its own simulated account
    from portfolio.services import cash_ledger, portfolio_statistics, portfolio_valuation

    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 2, 12), render_charts=False)
    assert replay.report["columns"]["replay"]["trades"] >= 1

    # when the owner's live portfolio is valued
    valuation = portfolio_valuation(owner=rules_strategy.owner)
    statistics = portfolio_statistics(owner=rules_strategy.owner)

    # then only the live paper account counts: its starting cash, no positions, no realised P&L, no trades
    assert cash_ledger(owner=rules_strategy.owner) == rules_strategy.broker_connection.starting_cash
    assert (valuation.positions, valuation.realized_pnl, valuation.positions_value) == ([], 0, 0)
    assert statistics.trades == 0


class WorkerDied(BaseException):
    """Stands for a killed worker: nothing in the replay catches it."""


def test_a_replay_whose_worker_died_resumes_where_it_stopped_and_ends_as_an_unbroken_one(rules_strategy):
    from django.utils import timezone

    from replays.models import STALE_AFTER

    start, end = dt.date(2010, 1, 4), dt.date(2010, 1, 29)
    unbroken = _replay(rules_strategy, start, end, render_charts=False)

    # given a replay whose worker died after its 7th step
    def die_after_seven(replay, step):
        if step.index == 6:
            raise WorkerDied

    replay = replay_create(owner=rules_strategy.owner, strategy=rules_strategy, start=start, end=end,
                           render_charts=False)  # fmt: skip
    with pytest.raises(WorkerDied):
        replay_run(replay=replay, progress=die_after_seven)
    replay.refresh_from_db()
    assert (replay.status, replay.steps.count()) == (ReplayStatus.RUNNING, 7)

    # when it is run again while fresh, nothing happens; once stale, it resumes
    assert replay_run(replay=replay).steps.count() == 7
    type(replay).objects.filter(pk=replay.pk).update(heartbeat_at=timezone.now() - STALE_AFTER - dt.timedelta(1))
    replay = replay_run(replay=replay)

    # then it finished with every step once, deciding and trading exactly as the unbroken replay did
    assert (replay.status, replay.steps_done) == (ReplayStatus.COMPLETED, replay.steps_total)
    assert list(replay.steps.values_list("index", flat=True)) == list(range(replay.steps_total))
    assert _rows(replay, DECISION_FIELDS + ACCOUNT_FIELDS) == _rows(unbroken, DECISION_FIELDS + ACCOUNT_FIELDS)


def test_prompt_version_option_replays_that_version_of_the_strategys_prompt(rules_strategy, stub_anthropic):
    # given the strategy's own prompt in two versions, the second being the one in use
    from signals_app.models import PromptTemplate
    from signals_app.prompts import prompt_version_create

    template = PromptTemplate.objects.create(owner=rules_strategy.owner, name="terse")
    first = prompt_version_create(template=template, body="First take on {{ symbol.symbol }}: close {{ last_close }}.")
    prompt_version_create(template=template, body="Second take on {{ symbol.symbol }}: close {{ last_close }}.")
    rules_strategy.prompt_template = template
    rules_strategy.save(update_fields=["prompt_template"])

    # when version 1 is replayed
    replay = _replay(
        rules_strategy, dt.date(2010, 3, 1), dt.date(2010, 3, 2), analyst=Analyst.ANTHROPIC, prompt_version=1
    )

    # then the analyst was asked with version 1's text, and the signals point at version 1
    assert replay.prompt_version == first
    assert [stub_anthropic.prompt(b).split(":")[0] for b in stub_anthropic.requests] == ["First take on SPY"] * 2
    assert set(
        TradingSignal.with_replays.filter(strategy=replay.shadow_strategy).values_list("prompt_version", flat=True)
    ) == {first.pk}


def test_a_replays_simulated_account_cannot_be_picked_for_manual_orders_or_strategies(client, rules_strategy):
    from orders.forms import ManualOrderForm
    from trading.forms import ScheduleStepForm

    replay = _replay(rules_strategy, dt.date(2010, 1, 4), dt.date(2010, 1, 4), render_charts=False)
    live = rules_strategy.broker_connection

    # the manual order form, the strategy form and the order API offer or accept the live account only
    assert list(ManualOrderForm(owner=rules_strategy.owner).fields["broker_connection"].queryset) == [live]
    assert list(ScheduleStepForm(owner=rules_strategy.owner).fields["broker_connection"].queryset) == [live]
    client.force_login(rules_strategy.owner)
    response = client.post(
        "/api/orders/",
        {
            "broker_connection": replay.broker_connection_id,
            "symbol": rules_strategy.symbol_id,
            "side": "BUY",
            "quantity": "1",
            "order_type": "LMT",
            "limit_price": "100",
        },
        content_type="application/json",
    )
    assert response.status_code == 400 and "broker_connection" in response.json()
    assert not Order.objects.exists()


def test_a_replay_exits_a_position_at_the_first_close_through_its_stop_as_the_live_watch_does(rules_strategy):
    from orders.models import Order, OrderSource

    # given the rules strategy without brackets: its positions' stops and targets are the watch's to act on
    assert not rules_strategy.use_bracket_orders

    # when November 2010 is replayed (SPY fell through the stop of the position bought early in the month)
    replay = _replay(rules_strategy, dt.date(2010, 11, 1), dt.date(2010, 11, 30), render_charts=False)

    # then the watch sold at the first close at or below the stop, as the live watch would have seen it then
    assert replay.status == ReplayStatus.COMPLETED
    [exit_order] = Order.with_replays.filter(strategy=replay.shadow_strategy, source=OrderSource.STOP_WATCH)
    position = exit_order.position
    steps = list(replay.steps.order_by("index"))
    held = [step for step in steps if step.position_quantity > 0]
    crossed = next(step for step in held if step.close <= position.stop_loss)
    assert all(step.close > position.stop_loss for step in held if step.index < crossed.index)
    assert exit_order.client_order_id == f"w{position.pk}-{crossed.bar_timestamp:%Y%m%d}"
    assert exit_order.limit_price < crossed.close  # a marketable limit: the close less the watch's allowance
    # and the exit filled on the next bar, closing the position there
    after = steps[crossed.index + 1]
    assert exit_order.status == "FILLED" and position.quantity == 0
    assert position.closed_at.date() == after.bar_timestamp.date() and after.position_quantity == 0
    assert position.realized_pnl < 0
