"""The lineage recorder: one row per step of an execution, and the reads the API and resumed runs need."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, Q
from django.utils import timezone

from lineage.models import LineageRecord, LineageStatus

ERROR_STEP = "execution_error"
ERROR_STEP_NUMBER = 99


def json_safe(value: Any) -> Any:
    """Plain JSON for a JSONField: Decimals as strings (exact), datetimes as ISO 8601, dataclasses as dicts."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return str(value)


def lineage_build(
    *,
    execution,
    step_name: str,
    step_number: int,
    input_data: dict | None = None,
    output_data: dict | None = None,
    metadata: dict | None = None,
    status: str = LineageStatus.SUCCESS,
    error: str = "",
    duration_ms: int = 0,
) -> LineageRecord:
    """One step's record, not saved yet (lineage_record saves it; lineage_record_many saves several at once)."""
    if status == LineageStatus.ERROR and not error:
        error = "unknown error"
    return LineageRecord(
        execution=execution,
        is_replay=execution.is_replay,
        step_name=step_name,
        step_number=step_number,
        input_data=json_safe(input_data or {}),
        output_data=json_safe(output_data or {}),
        metadata=json_safe(metadata or {}),
        status=status,
        error=error,
        duration_ms=max(0, int(duration_ms)),
        recorded_at=timezone.now(),
    )


def lineage_record(**fields) -> LineageRecord:
    """Record one step (the fields of lineage_build). A step is recorded once per execution: recording it again
    returns the first record."""
    record = lineage_build(**fields)
    try:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():  # a savepoint: a duplicate must not break the caller's transaction
                record.save()
        else:
            record.save()  # autocommit: one INSERT, committed on its own, and a duplicate changes nothing
    except IntegrityError:
        existing = lineage_recorded(execution=record.execution, step_name=record.step_name)
        if existing is None:
            raise
        return existing
    return record


def lineage_record_many(records: list[LineageRecord]) -> None:
    """Save built records in one INSERT. For a writer that knows none of them is recorded yet (an execution it
    started itself): a duplicate is an IntegrityError, not read back.

    A plain multi-row VALUES statement: bulk_create on PostgreSQL sends each column as an array for UNNEST, and
    quoting JSON documents into array literals costs more than the insert itself for a handful of rows."""
    if not records:
        return
    connection = transaction.get_connection()
    fields = [field for field in LineageRecord._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(LineageRecord._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES {', '.join([row] * len(records))} RETURNING {quote(LineageRecord._meta.pk.column)}"
    )
    params = [
        field.get_db_prep_save(getattr(record, field.attname), connection) for record in records for field in fields
    ]
    with connection.cursor() as cursor:  # one statement: atomic on its own
        cursor.execute(sql, params)
        for record, (pk,) in zip(records, cursor.fetchall(), strict=True):
            record.pk, record._state.adding, record._state.db = pk, False, connection.alias


def lineage_recorded(*, execution, step_name: str) -> LineageRecord | None:
    """The step as already recorded for this execution, if it was: a resumed run reads it back instead of redoing it."""
    return LineageRecord.with_replays.filter(execution=execution, step_name=step_name).first()


def lineage_as_dict(record: LineageRecord) -> dict:
    return {
        "id": record.pk,
        "execution_id": str(record.execution_id),
        "step_name": record.step_name,
        "step_number": record.step_number,
        "input_data": record.input_data,
        "output_data": record.output_data,
        "metadata": record.metadata,
        "error": record.error or None,
        "status": record.status,
        "duration_ms": record.duration_ms,
        "recorded_at": record.recorded_at.isoformat(),
    }


def step_statistics(*, owner, step_name: str, strategy_id: int | None = None, days: int = 30) -> dict:
    """Average duration, success rate and the most common errors of one step over the owner's recent live runs
    (a replay's thousands of steps would drown them)."""
    since = timezone.now() - dt.timedelta(days=days)
    records = LineageRecord.objects.for_owner(owner).filter(step_name=step_name, recorded_at__gte=since)
    if strategy_id is not None:
        records = records.filter(execution__strategy_id=strategy_id)
    totals = records.aggregate(
        total=Count("id"),
        successes=Count("id", filter=Q(status=LineageStatus.SUCCESS)),
        errors=Count("id", filter=Q(status=LineageStatus.ERROR)),
        skipped=Count("id", filter=Q(status=LineageStatus.SKIPPED)),
        average_duration_ms=Avg("duration_ms"),
    )
    errors = Counter(records.filter(status=LineageStatus.ERROR).values_list("error", flat=True))
    total = totals["total"]
    return {
        "step_name": step_name,
        "strategy_id": strategy_id,
        "days": days,
        "total_executions": total,
        "successful": totals["successes"],
        "failed": totals["errors"],
        "skipped": totals["skipped"],
        "success_rate": round(totals["successes"] / total, 4) if total else None,
        "average_duration_ms": round(totals["average_duration_ms"], 1) if total else None,
        "common_errors": [{"error": text[:500], "count": count} for text, count in errors.most_common(5)],
    }
