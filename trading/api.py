"""API: indicators (available, configurations) and strategies (CRUD through the strategy service, run now,
executions). Every queryset is the requesting user's own, so another user's ids are a 404."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from brokers.models import BrokerConnection
from core.api import OwnedPrimaryKeyField, UpperChoiceField, drf_error, list_filters
from market.indicators import describe_registry, validate_config
from market.models import IndicatorConfig, IndicatorType, Symbol
from signals_app.models import PromptTemplate, PromptVersion
from trading import services
from trading.models import ExecutionStatus, Strategy, StrategyExecution

# --- indicators -----------------------------------------------------------------------------------------------------


class IndicatorConfigSerializer(serializers.ModelSerializer):
    indicator_type = serializers.ChoiceField(choices=IndicatorType.choices)
    parameters = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)

    class Meta:
        model = IndicatorConfig
        fields = ["id", "name", "indicator_type", "parameters", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_name(self, name: str) -> str:
        owner = self.context["request"].user
        taken = IndicatorConfig.objects.filter(owner=owner, name__iexact=name.strip())
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("You already have an indicator with this name.")
        return name.strip()

    def validate(self, attrs: dict) -> dict:
        indicator_type = attrs.get("indicator_type", getattr(self.instance, "indicator_type", None))
        parameters = attrs.get("parameters", getattr(self.instance, "parameters", {}))
        try:
            attrs["parameters"] = validate_config(indicator_type, parameters)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"parameters": error.messages}) from None
        return attrs


class IndicatorConfigViewSet(viewsets.ModelViewSet):
    """Your saved indicator configurations, validated against the indicator registry."""

    serializer_class = IndicatorConfigSerializer
    queryset = IndicatorConfig.objects.none()  # for the schema; get_queryset gives the user's own

    def get_queryset(self):
        owner = cast(User, self.request.user)  # IsAuthenticated (the API's default permission): a User
        return IndicatorConfig.objects.filter(owner=owner).order_by("name")

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)

    def perform_destroy(self, instance):
        if instance.strategy_links.exists():
            raise serializers.ValidationError({"non_field_errors": ["This indicator is used by a strategy."]})
        instance.delete()


class AvailableIndicatorsView(APIView):
    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="indicator name -> label, params, columns")}
    )
    def get(self, request: Request) -> Response:
        """Every indicator with its parameters (type, range, default), output columns and chart panel."""
        return Response(describe_registry())


# --- strategies -------------------------------------------------------------------------------------------------------


class ExecutionSerializer(serializers.ModelSerializer):
    class Meta:
        model = StrategyExecution
        fields = ["execution_id", "strategy", "status", "dry_run", "trigger", "started_at", "finished_at", "error"]
        read_only_fields = fields


class StrategySerializer(serializers.ModelSerializer):
    symbol = serializers.PrimaryKeyRelatedField(queryset=Symbol.objects.all())
    symbol_ticker = serializers.CharField(source="symbol.symbol", read_only=True)
    indicators = OwnedPrimaryKeyField(queryset=IndicatorConfig.objects.all(), many=True, required=False)
    prompt_template = serializers.PrimaryKeyRelatedField(
        queryset=PromptTemplate.objects.all(), required=False, allow_null=True
    )
    pinned_prompt_version = serializers.PrimaryKeyRelatedField(
        queryset=PromptVersion.objects.all(), required=False, allow_null=True
    )
    broker_connection = OwnedPrimaryKeyField(queryset=BrokerConnection.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Strategy
        fields = [
            "id",
            "name",
            "symbol",
            "symbol_ticker",
            "bar_size",
            "lookback_bars",
            "weekly_chart",
            "indicators",
            "prompt_template",
            "pinned_prompt_version",
            "analyst",
            "llm_model",
            "schedule_cron",
            "schedule_timezone",
            "market_data_source",
            "broker_connection",
            "max_bar_age_bars",
            "trading_days_only",
            "risk_per_trade",
            "max_position_value",
            "max_open_positions",
            "daily_loss_limit",
            "max_orders_per_day",
            "min_confidence",
            "reward_risk_ratio",
            "use_bracket_orders",
            "kill_switch",
            "is_active",
            "archived_at",
            "last_execution_at",
            "next_execution_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "archived_at", "last_execution_at", "next_execution_at", "created_at", "updated_at"]
        # Uniqueness per owner is checked below: the owner is not a field of the request.
        validators: list = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["indicators"] = [link.indicator_id for link in instance.strategy_indicators.all()]
        return data

    def validate_name(self, name: str) -> str:
        owner = self.context["request"].user
        taken = Strategy.objects.filter(owner=owner, name__iexact=name.strip()).current()
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("You already have a strategy with this name.")
        return name.strip()

    def validate_prompt_template(self, template):
        user = self.context["request"].user
        if template is not None and template.owner_id not in (None, user.pk):
            raise serializers.ValidationError(f'Invalid pk "{template.pk}" - object does not exist.')
        return template

    def validate_pinned_prompt_version(self, version):
        user = self.context["request"].user
        if version is not None and version.template.owner_id not in (None, user.pk):
            raise serializers.ValidationError(f'Invalid pk "{version.pk}" - object does not exist.')
        return version

    def create(self, validated_data):
        indicators = validated_data.pop("indicators", [])
        name, symbol = validated_data.pop("name"), validated_data.pop("symbol")
        try:
            return services.strategy_create(
                owner=self.context["request"].user, name=name, symbol=symbol, indicators=indicators, **validated_data
            )
        except DjangoValidationError as error:
            raise drf_error(error) from None

    def update(self, instance, validated_data):
        indicators = validated_data.pop("indicators", None)
        try:
            return services.strategy_update(strategy=instance, indicators=indicators, **validated_data)
        except DjangoValidationError as error:
            raise drf_error(error) from None


class StrategyViewSet(viewsets.ModelViewSet):
    """Your strategies. Every write goes through the strategy service, which keeps the schedule in line."""

    serializer_class = StrategySerializer
    queryset = Strategy.objects.none()  # for the schema; get_queryset gives the user's own

    def get_queryset(self):
        strategies = Strategy.objects.for_owner(self.request.user)
        if self.action == "list" and not _yes(self.request.query_params.get("archived")):
            strategies = strategies.current()  # ?archived=true lists the archived ones too
        return strategies.select_related("symbol").prefetch_related("strategy_indicators").order_by("name")

    @extend_schema(
        parameters=[OpenApiParameter("archive_anyway", bool, description="archive even with an open position")],
        responses={204: None, 409: OpenApiTypes.OBJECT},
    )
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        """Archive the strategy (it is never deleted: its history stays). With an open position or working orders:
        409 with the reason, unless `?archive_anyway=true`."""
        strategy = self.get_object()
        try:
            services.strategy_archive(strategy=strategy, anyway=_yes(request.query_params.get("archive_anyway")))
        except services.StrategyInUse as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: ExecutionSerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk=None) -> Response:
        """Run the strategy now (once, in the background); answers with the new execution."""
        strategy = self.get_object()
        try:
            execution = services.strategy_run_now(strategy=strategy)
        except (services.StrategyPaused, services.AlreadyRunning) as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=StrategySerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk=None) -> Response:
        strategy = services.strategy_pause(strategy=self.get_object())
        return Response(self.get_serializer(strategy).data)

    @extend_schema(request=None, responses={200: StrategySerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        try:
            strategy = services.strategy_resume(strategy=self.get_object())
        except services.StrategyPaused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(strategy).data)

    @extend_schema(responses=ExecutionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def executions(self, request: Request, pk=None) -> Response:
        """The strategy's executions, newest first (paginated)."""
        strategy = self.get_object()
        queryset = StrategyExecution.objects.filter(strategy=strategy).recent()
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ExecutionSerializer(page, many=True).data)


class ExecutionQuery(serializers.Serializer):
    strategy = serializers.IntegerField(min_value=1, required=False)
    status = UpperChoiceField(choices=ExecutionStatus.choices)


class ExecutionViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your executions across strategies (poll one to follow a run). Filter with ?strategy=, ?status=."""

    serializer_class = ExecutionSerializer
    queryset = StrategyExecution.objects.none()  # for the schema; get_queryset gives the user's own
    # Any id reaches the view, so one that is not a UUID is the API's JSON 404, not the site's HTML one.
    lookup_value_regex = "[^/.]+"

    @extend_schema(parameters=[ExecutionQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        executions = StrategyExecution.objects.for_owner(self.request.user).recent()
        if self.action == "list":
            executions = executions.filter(**list_filters(ExecutionQuery, self.request))
        return executions


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}
