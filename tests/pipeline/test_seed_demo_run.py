"""seed_demo schedules the demo strategy through the strategy service and runs it once on the playback feed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from lineage.models import LineageRecord
from lineage.steps import STEPS
from trading.models import ExecutionStatus, Strategy, StrategyExecution

pytestmark = pytest.mark.django_db


def test_seed_demo_runs_the_demo_strategy_once_with_nine_lineage_rows_and_its_chart_in_storage(s3_storage):
    out = StringIO()

    call_command("seed_demo", stdout=out)

    strategy = Strategy.objects.get(name="SPY demo")
    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).enabled
    execution = StrategyExecution.objects.get(strategy=strategy)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error
    records = list(LineageRecord.objects.for_execution(execution.pk))
    assert [r.step_name for r in records] == list(STEPS)
    chart_keys = next(r for r in records if r.step_name == "generate_charts").output_data["chart_keys"]
    assert chart_keys and set(chart_keys) <= set(s3_storage.keys())
    assert str(execution.pk) in out.getvalue()

    call_command("seed_demo", stdout=StringIO())  # again: nothing new runs

    assert StrategyExecution.objects.filter(strategy=strategy).count() == 1
