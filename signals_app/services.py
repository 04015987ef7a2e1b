"""Writes of the signals app: LLM call audit rows, trading signals, outcomes and prompt performance."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from signals_app.llm import Answer, Exchange
from signals_app.models import (
    LLMCall,
    LLMCallStatus,
    PromptPerformance,
    PromptVersion,
    TradingSignal,
)
from signals_app.parsing import ParsedSignal

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
        is_replay=strategy.is_replay,
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


# --- prompt performance ---------------------------------------------------------------------------------------------


def prompt_performance_refresh() -> list[PromptPerformance]:
    """Recompute the PromptPerformance row of every (prompt version, model) that produced live signals; replays'
    signals stay with their replay's report. A row no live signal backs any more (its strategies deleted, or counted
    when replays were still included) is removed. Rules signals (no prompt) are the baseline: read them with
    `TradingSignal.objects.performance()`."""
    rows = TradingSignal.objects.filter(prompt_version__isnull=False).performance()
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
