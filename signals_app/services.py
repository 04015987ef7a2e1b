"""Writes of the signals app: LLM call audit rows, trading signals, outcomes and prompt performance."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from orders.models import Order, OrderSide, Trade
from signals_app.llm import Answer, Exchange
from signals_app.models import (
    LLMCall,
    LLMCallStatus,
    PromptPerformance,
    PromptVersion,
    SignalAction,
    SignalOutcome,
    TradingSignal,
)
from signals_app.parsing import ParsedSignal

SCRATCH_R = Decimal("0.1")  # a closed trade within ±0.1 R of break-even is neither a win nor a loss
R_QUANTUM = Decimal("0.0001")


# --- LLM calls ------------------------------------------------------------------------------------------------------


@transaction.atomic
def llm_call_record(
    *,
    strategy,
    execution,
    prompt_version: PromptVersion | None,
    system_prompt_version: PromptVersion | None,
    analyst: str,
    requested_model: str,
    cache_key: str,
    exchange: Exchange,
    answer: Answer | None,
    error: str,
    cost: Decimal | None,
) -> LLMCall:
    """One call as it happened: sent (or failed) once, recorded once, never updated."""
    usage = exchange.usage or {}
    return LLMCall.objects.create(
        strategy=strategy,
        execution=execution,
        prompt_version=prompt_version,
        system_prompt_version=system_prompt_version,
        analyst=analyst,
        requested_model=requested_model,
        resolved_model=exchange.resolved_model,
        cache_key=cache_key,
        request=exchange.request,
        request_headers=exchange.request_headers,
        response=exchange.response,
        answer_text=answer.text if answer else "",
        answer_fields=answer.fields if answer else None,
        status=LLMCallStatus.ERROR if error else LLMCallStatus.OK,
        error=error,
        stop_reason=exchange.stop_reason,
        request_id=exchange.request_id[:100],
        retries=exchange.retries,
        latency_ms=exchange.latency_ms,
        input_tokens=usage.get("input_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
        cache_creation_input_tokens=usage.get("cache_creation_input_tokens", 0),
        cache_read_input_tokens=usage.get("cache_read_input_tokens", 0),
        cost_usd=cost,
    )


@transaction.atomic
def llm_call_record_cache_hit(
    *,
    origin: LLMCall,
    strategy,
    execution,
    prompt_version,
    system_prompt_version,
    analyst: str,
    requested_model: str,
    cache_key: str,
) -> LLMCall:
    """An answer taken from the LLM cache: the stored response again, marked as such, with no tokens and no cost."""
    return LLMCall.objects.create(
        strategy=strategy,
        execution=execution,
        prompt_version=prompt_version,
        system_prompt_version=system_prompt_version,
        analyst=analyst,
        requested_model=requested_model,
        resolved_model=origin.resolved_model,
        cache_key=cache_key,
        from_cache=True,
        cached_from=origin,
        request=origin.request,
        request_headers={},
        response=origin.response,
        answer_text=origin.answer_text,
        answer_fields=origin.answer_fields,
        stop_reason=origin.stop_reason,
        request_id=origin.request_id,
        cost_usd=Decimal(0),
    )


# --- signals --------------------------------------------------------------------------------------------------------


def signal_record(
    *,
    strategy,
    execution,
    parsed: ParsedSignal,
    prompt_version: PromptVersion | None,
    analyst: str,
    model: str,
    generated_at,
) -> TradingSignal:
    """Store the validated signal with the prompt version and model that produced it. The database checks the same
    invariants the parser did (BUY stop < entry < target, SELL has an exit price, 0 <= confidence <= 1)."""
    return TradingSignal.objects.create(
        strategy=strategy,
        execution=execution,
        symbol=strategy.symbol,
        action=parsed.action,
        entry_price=parsed.entry,
        stop_loss=parsed.stop_loss,
        take_profit=parsed.target,
        confidence=parsed.confidence,
        reasoning=parsed.reasoning,
        refusal_reason=parsed.refusal_reason,
        prompt_version=prompt_version,
        analyst=analyst,
        model=model,
        generated_at=generated_at,
    )


def signal_outcomes_settle(*, signals=None) -> int:
    """Work out the outcome of BUY signals from their fills. Entry fills are the trades of the signal's BUY orders;
    exit fills are SELL trades of orders placed under those entries (bracket legs) or closing the position the entry
    opened. Fully exited: WIN, LOSS or SCRATCH with the R multiple (exit - entry) / (entry - stop), from average fill
    prices. Entered but not fully exited: OPEN. Returns how many signals changed."""
    pending = TradingSignal.objects.filter(
        action=SignalAction.BUY, outcome__in=[SignalOutcome.NONE, SignalOutcome.OPEN]
    )
    if signals is not None:
        pending = pending.filter(pk__in=[s.pk for s in signals])
    changed = 0
    for signal in pending:
        outcome, r_multiple = _outcome_from_fills(signal)
        if outcome == signal.outcome:
            continue
        # Conditional on the outcome we read: two settlers racing cannot both write.
        changed += TradingSignal.objects.filter(pk=signal.pk, outcome=signal.outcome).update(
            outcome=outcome, r_multiple=r_multiple
        )
    return changed


def _outcome_from_fills(signal: TradingSignal) -> tuple[str, Decimal | None]:
    entries = Order.objects.filter(signal=signal, side=OrderSide.BUY)
    entry_qty, entry_price = _average_fill(Trade.objects.filter(order__in=entries))
    if not entry_qty:
        return signal.outcome, signal.r_multiple
    positions = [pk for pk in entries.values_list("position_id", flat=True) if pk]
    exits = Trade.objects.filter(order__side=OrderSide.SELL).filter(
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


def _average_fill(trades) -> tuple[Decimal, Decimal]:
    rows = list(trades.values_list("quantity", "price"))
    quantity = sum((q for q, _ in rows), Decimal(0))
    if not quantity:
        return Decimal(0), Decimal(0)
    return quantity, sum((q * p for q, p in rows), Decimal(0)) / quantity


# --- prompt performance ---------------------------------------------------------------------------------------------


def prompt_performance_refresh() -> list[PromptPerformance]:
    """Recompute the PromptPerformance row of every (prompt version, model) that produced live signals; replays'
    signals stay with their replay's report. A row no live signal backs any more (its strategies deleted, or counted
    when replays were still included) is removed. Rules signals (no prompt) are the baseline: read them with
    `TradingSignal.objects.live().performance()`."""
    rows = TradingSignal.objects.live().filter(prompt_version__isnull=False).performance()
    saved = []
    for row in rows:
        values = {key: row[key] for key in PERFORMANCE_FIELDS}
        with transaction.atomic():
            performance, _ = PromptPerformance.objects.update_or_create(
                prompt_version_id=row["prompt_version"], model=row["model"], defaults=values
            )
        saved.append(performance)
    PromptPerformance.objects.exclude(pk__in=[performance.pk for performance in saved]).delete()
    return saved


PERFORMANCE_FIELDS = (
    "signals",
    "buys",
    "sells",
    "holds",
    "wins",
    "losses",
    "scratches",
    "average_confidence",
    "hit_rate",
    "average_r_multiple",
)


def llm_spend(*, since=None, strategy=None) -> Decimal:
    """USD spent on LLM calls (cache answers are free), for the dashboard and the cost benchmark's cross-check."""
    calls = LLMCall.objects.filter(created_at__gte=since or timezone.now() - dt.timedelta(days=30))
    if strategy is not None:
        calls = calls.filter(strategy=strategy)
    return calls.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)
