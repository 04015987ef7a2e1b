"""The machinery under the executor's workflow: a Run, the `step` decorator that records each step in lineage (or
reads it back), and the lineage a run defers to its next write.

A step already recorded for this execution is read back, not redone, so a retried or resumed run makes no second
LLM call, no second signal and no second order intent. A step that fails records its error; a step that cannot go
on (`Skip`) records why. An `atomic` step's writes commit together with the lineage so far.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from lineage.models import LineageRecord, LineageStatus
from lineage.services import lineage_build, lineage_record, lineage_record_many
from lineage.steps import STEP_NUMBERS
from trading.environment import RunEnvironment
from trading.models import SkipReason, StrategyExecution
from trading.queues import STEP_QUEUES


class Skip(Exception):
    """The run cannot go on, and that is not a failure (inactive, not logged in, no more playback data). `reason`
    is the SkipReason the execution is closed with; the message says it in words."""

    def __init__(self, message: str, *, reason: SkipReason) -> None:
        super().__init__(message)
        self.reason = reason


class Handoff(Exception):
    def __init__(self, step: str, queue: str) -> None:
        super().__init__(f"{step} runs on the {queue} queue")
        self.step, self.queue = step, queue


class StepFailed(Exception):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"{step}: {error}")
        self.step, self.error = step, error


@dataclass
class StepResult:
    """What a step recorded (`input`/`output`/`metadata`) and what it hands to the next step (`value`)."""

    output: dict[str, Any]
    value: Any = None
    input: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    # SKIPPED for a step that declined to act while the run goes on (a refused entry): recorded as skipped so the
    # logs show it, read back like a success.
    status: str = LineageStatus.SUCCESS


OnStep = Callable[[LineageRecord, bool], None]  # (record, read_back): the commands print these


@dataclass
class Run:
    """One execution being run by one task (or one replay step), in its environment."""

    execution: StrategyExecution
    env: RunEnvironment
    queue: str | None = None  # the queue this task runs on, when the pipeline is split
    on_step: OnStep | None = None
    started: float = field(default_factory=time.monotonic)
    memo: dict[str, Any] = field(default_factory=dict)
    # The lineage written with the run's next write (`flush`), as the fields of each record: one INSERT for several
    # steps. A run inside its caller's transaction writes it all at its close.
    pending: list[dict[str, Any]] = field(default_factory=list)
    in_callers_transaction: bool = False

    def recorded(self, step_name: str) -> LineageRecord | None:
        """The step as this execution already recorded it (read once per task: one query, not one per step)."""
        if "recorded" not in self.memo:
            self.memo["recorded"] = {
                record.step_name: record for record in LineageRecord.with_replays.filter(execution=self.execution)
            }
        recorded: LineageRecord | None = self.memo["recorded"].get(step_name)
        return recorded

    def record(self, **fields: Any) -> LineageRecord:
        """Record a step of this execution in lineage; a run whose environment defers lineage keeps it until its
        next write (the parse_signal and execution_complete transactions, the order service, the close). That is
        safe where a lost record costs nothing: a replay's steps before the signal write nothing else, and a replay
        whose runner dies redoes its step."""
        if not self.env.defers_lineage:
            return lineage_record(execution=self.execution, **fields)
        self.pending.append(fields)
        return lineage_build(execution=self.execution, **fields)

    def flush(self, *, closing: bool = False) -> None:
        """Write the deferred records; before the close, not for a run inside its caller's transaction."""
        if self.in_callers_transaction and not closing:
            return
        pending, self.pending = self.pending, []
        try:
            lineage_record_many([lineage_build(execution=self.execution, **fields) for fields in pending])
        except BaseException:
            self.pending = pending + self.pending
            raise

    def reported(self, record: LineageRecord, *, read_back: bool) -> None:
        if self.on_step is not None:
            self.on_step(record, read_back)

    def must_hand_off(self, step_name: str) -> str | None:
        if not self.env.splits_queues:
            return None
        wanted = STEP_QUEUES.get(step_name)
        return wanted if wanted and wanted != self.queue else None


Restore = Callable[..., Any]


def step(name: str, *, restore: Restore, atomic: bool = False) -> Callable[[Callable[..., StepResult]], Any]:
    """Record the step in lineage, or read it back when this execution already recorded it.

    `restore(run, output, *args)` rebuilds the step's value from its recorded output. An `atomic` step's writes and
    its lineage record commit together (it must not call a broker or an LLM)."""

    def decorate(func: Callable[..., StepResult]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run_step(run: Run, *args: Any) -> Any:
            recorded = run.recorded(name)
            if recorded is not None:
                return _read_back(run, name, recorded, restore, args)
            queue = run.must_hand_off(name)
            if queue:
                raise Handoff(name, queue)
            started = time.monotonic()
            unsaved = list(run.pending)
            try:
                with transaction.atomic(savepoint=not run.in_callers_transaction) if atomic else nullcontext():
                    result = func(run, *args)
                    record = run.record(
                        step_name=name,
                        step_number=STEP_NUMBERS[name],
                        input_data=result.input,
                        output_data={**result.output, "run_continues": True}
                        if result.status == LineageStatus.SKIPPED
                        else result.output,
                        metadata={"strategy_id": run.execution.strategy_id, **result.metadata},
                        status=result.status,
                        duration_ms=ms_since(started),
                    )
                    if atomic:  # the step's writes and the lineage so far commit together
                        run.flush(closing=name == "execution_complete")
            except Skip as skip:
                if atomic:  # rolled back: what it wrote is pending again
                    run.pending = unsaved
                record = _record_problem(run, name, started, LineageStatus.SKIPPED, str(skip), skip_reason=skip.reason)
                run.reported(record, read_back=False)
                raise
            except Exception as exc:
                if atomic:
                    run.pending = unsaved
                record = _record_problem(run, name, started, LineageStatus.ERROR, describe(exc))
                run.reported(record, read_back=False)
                raise StepFailed(name, exc) from exc
            run.reported(record, read_back=False)
            return result.value

        return run_step

    return decorate


def _read_back(run: Run, name: str, recorded: LineageRecord, restore: Restore, args: tuple[Any, ...]) -> Any:
    if recorded.status == LineageStatus.SUCCESS or recorded.output_data.get("run_continues"):
        run.reported(recorded, read_back=True)
        return restore(run, recorded.output_data, *args)
    if recorded.status == LineageStatus.ERROR:  # failed before the run was closed
        raise StepFailed(name, RuntimeError(recorded.error))
    reason = SkipReason(recorded.output_data.get("skip_reason") or SkipReason.INACTIVE)
    raise Skip(recorded.error or f"{name} was skipped", reason=reason)


def _record_problem(
    run: Run, name: str, started: float, status: str, message: str, *, skip_reason: str = ""
) -> LineageRecord:
    output = {"status": status, "reason": message} | ({"skip_reason": skip_reason} if skip_reason else {})
    return run.record(
        step_name=name,
        step_number=STEP_NUMBERS[name],
        status=status,
        error=message,
        output_data=output,
        metadata={"strategy_id": run.execution.strategy_id},
        duration_ms=ms_since(started),
    )


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
