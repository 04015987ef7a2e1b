"""The lineage API: the original design's endpoints and JSON shapes, scoped to the requesting user.

Another user's execution or strategy is a 404, the same answer as one that does not exist.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from lineage.models import LineageRecord
from lineage.services import lineage_as_dict, step_statistics
from trading.models import Strategy, StrategyExecution


class RecentQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)


class StatisticsQuery(serializers.Serializer):
    strategy_id = serializers.IntegerField(min_value=1, required=False)
    days = serializers.IntegerField(min_value=1, max_value=365, default=30)


class StepSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    execution_id = serializers.UUIDField()
    step_name = serializers.CharField()
    step_number = serializers.IntegerField()
    input_data = serializers.JSONField()
    output_data = serializers.JSONField()
    metadata = serializers.JSONField()
    error = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["success", "error", "skipped"])
    duration_ms = serializers.IntegerField()
    recorded_at = serializers.DateTimeField()


class ExecutionLineageSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    steps = StepSerializer(many=True)
    total_steps = serializers.IntegerField()
    has_errors = serializers.BooleanField()


class RecentExecutionSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    executed_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    trigger = serializers.CharField()
    dry_run = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)


class RecentExecutionsSerializer(serializers.Serializer):
    strategy_id = serializers.IntegerField()
    executions = RecentExecutionSerializer(many=True)
    count = serializers.IntegerField()


class CommonErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    count = serializers.IntegerField()


class StepStatisticsSerializer(serializers.Serializer):
    step_name = serializers.CharField()
    strategy_id = serializers.IntegerField(allow_null=True)
    days = serializers.IntegerField()
    total_executions = serializers.IntegerField()
    successful = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    average_duration_ms = serializers.FloatField(allow_null=True)
    common_errors = CommonErrorSerializer(many=True)


def _execution_for_user(user, execution_id) -> StrategyExecution:
    return get_object_or_404(StrategyExecution.objects.for_owner(user), pk=execution_id)


@extend_schema(tags=["lineage"], responses=ExecutionLineageSerializer, summary="Every step of one execution")
@api_view(["GET"])
def execution_lineage(request: Request, execution_id) -> Response:
    execution = _execution_for_user(request.user, execution_id)
    records = list(LineageRecord.objects.for_execution(execution.pk))
    return Response(
        {
            "execution_id": str(execution.pk),
            "steps": [lineage_as_dict(record) for record in records],
            "total_steps": len(records),
            "has_errors": any(record.error for record in records),
        }
    )


@extend_schema(tags=["lineage"], responses=StepSerializer, summary="One step of one execution")
@api_view(["GET"])
def step_lineage(request: Request, execution_id, step_name: str) -> Response:
    execution = _execution_for_user(request.user, execution_id)
    record = LineageRecord.objects.for_execution(execution.pk).filter(step_name=step_name).first()
    if record is None:
        raise Http404("Step not found")
    return Response(lineage_as_dict(record))


@extend_schema(
    tags=["lineage"], parameters=[RecentQuery], responses=RecentExecutionsSerializer, summary="A strategy's recent runs"
)
@api_view(["GET"])
def recent_executions(request: Request, strategy_id: int) -> Response:
    strategy = get_object_or_404(Strategy.objects.for_owner(request.user), pk=strategy_id)
    query = RecentQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    executions = StrategyExecution.objects.filter(strategy=strategy).recent()[: query.validated_data["limit"]]
    rows = [
        {
            "execution_id": str(execution.pk),
            "executed_at": execution.started_at.isoformat(),
            "finished_at": execution.finished_at.isoformat() if execution.finished_at else None,
            "status": execution.status,
            "trigger": execution.trigger,
            "dry_run": execution.dry_run,
            "error": execution.error or None,
        }
        for execution in executions
    ]
    return Response({"strategy_id": strategy.pk, "executions": rows, "count": len(rows)})


@extend_schema(
    tags=["lineage"],
    parameters=[StatisticsQuery],
    responses=StepStatisticsSerializer,
    summary="Duration, success rate and common errors of one step over your runs",
)
@api_view(["GET"])
def step_stats(request: Request, step_name: str) -> Response:
    query = StatisticsQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    strategy_id = query.validated_data.get("strategy_id")
    if strategy_id is not None:
        get_object_or_404(Strategy.objects.for_owner(request.user), pk=strategy_id)
    return Response(
        step_statistics(
            owner=request.user, step_name=step_name, strategy_id=strategy_id, days=query.validated_data["days"]
        )
    )


urlpatterns = [
    path("execution/<uuid:execution_id>/", execution_lineage, name="lineage-execution"),
    path("execution/<uuid:execution_id>/step/<str:step_name>/", step_lineage, name="lineage-step"),
    path("strategy/<int:strategy_id>/recent/", recent_executions, name="lineage-recent"),
    path("step/<str:step_name>/statistics/", step_stats, name="lineage-step-statistics"),
]
