"""API: prompt templates and their versions, and signals."""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import UpperChoiceField, list_filters
from signals_app.models import LLMCall, PromptTemplate, PromptVersion, SignalAction, SignalOutcome, TradingSignal
from signals_app.prompts import PromptRenderError, check_template_body, prompt_version_create


class PromptVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromptVersion
        fields = ["id", "number", "body", "sha256", "note", "created_at"]
        read_only_fields = ["id", "number", "sha256", "created_at"]

    def validate_body(self, body: str) -> str:
        try:
            check_template_body(body)
        except PromptRenderError as error:
            raise serializers.ValidationError(str(error)) from None
        return body


class PromptTemplateSerializer(serializers.ModelSerializer):
    body = serializers.CharField(write_only=True, help_text="the text of version 1")
    is_global = serializers.BooleanField(read_only=True)
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplate
        fields = ["id", "name", "prompt_type", "language", "description", "is_global", "latest_version", "body"]
        read_only_fields = ["id", "is_global", "latest_version"]

    def get_latest_version(self, template) -> int | None:
        versions = sorted((v.number for v in template.versions.all()), reverse=True)
        return versions[0] if versions else None

    def validate_name(self, name: str) -> str:
        owner = self.context["request"].user
        if PromptTemplate.objects.filter(owner=owner, name__iexact=name.strip()).exists():
            raise serializers.ValidationError("You already have a prompt with this name.")
        return name.strip()

    def validate_body(self, body: str) -> str:
        try:
            check_template_body(body)
        except PromptRenderError as error:
            raise serializers.ValidationError(str(error)) from None
        return body

    def create(self, validated_data):
        body = validated_data.pop("body")
        user = self.context["request"].user
        with transaction.atomic():
            template = PromptTemplate.objects.create(owner=user, **validated_data)
            prompt_version_create(template=template, body=body, created_by=user)
        return template


class PromptTemplateViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Your prompt templates and the global ones. A template's text changes only by adding a version."""

    serializer_class = PromptTemplateSerializer
    queryset = PromptTemplate.objects.none()  # for the schema; get_queryset gives what the user may see

    def get_queryset(self):
        return (
            PromptTemplate.objects.visible_to(self.request.user)
            .filter(strategy__isnull=True)
            .prefetch_related("versions")
            .order_by("name")
        )

    @extend_schema(methods=["get"], responses=PromptVersionSerializer(many=True))
    @extend_schema(methods=["post"], request=PromptVersionSerializer, responses={201: PromptVersionSerializer})
    @action(detail=True, methods=["get", "post"])
    def versions(self, request: Request, pk=None) -> Response:
        """GET: every version, newest first. POST: save a new version (yours, or a global one if you are staff)."""
        template = self.get_object()
        if request.method == "GET":
            return Response(PromptVersionSerializer(template.versions.order_by("-number"), many=True).data)
        if template.owner_id != request.user.pk and not (template.is_global and request.user.is_staff):
            raise Http404("not yours to edit")
        serializer = PromptVersionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = prompt_version_create(
            template=template,
            body=serializer.validated_data["body"],
            note=serializer.validated_data.get("note", ""),
            created_by=request.user,
        )
        return Response(PromptVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class LLMCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = LLMCall
        fields = [
            "id",
            "analyst",
            "requested_model",
            "resolved_model",
            "from_cache",
            "status",
            "stop_reason",
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "cost_usd",
            "latency_ms",
            "created_at",
        ]
        read_only_fields = fields


class SignalSerializer(serializers.ModelSerializer):
    symbol_ticker = serializers.CharField(source="symbol.symbol", read_only=True)
    strategy_name = serializers.CharField(source="strategy.name", read_only=True)

    class Meta:
        model = TradingSignal
        fields = [
            "id",
            "strategy",
            "strategy_name",
            "execution",
            "symbol",
            "symbol_ticker",
            "action",
            "entry_price",
            "stop_loss",
            "take_profit",
            "confidence",
            "reasoning",
            "refusal_reason",
            "prompt_version",
            "analyst",
            "model",
            "generated_at",
            "outcome",
            "r_multiple",
        ]
        read_only_fields = fields


class SignalDetailSerializer(SignalSerializer):
    llm_calls = serializers.SerializerMethodField()

    class Meta(SignalSerializer.Meta):
        fields = [*SignalSerializer.Meta.fields, "llm_calls"]
        read_only_fields = fields

    def get_llm_calls(self, signal) -> list[dict]:
        if not signal.execution_id:
            return []
        calls = LLMCall.objects.filter(execution_id=signal.execution_id)
        # many=True makes a ListSerializer, whose data is a list; the stubs type the call as the class itself
        return LLMCallSerializer(calls, many=True).data  # type: ignore[return-value]


class SignalQuery(serializers.Serializer):
    strategy = serializers.IntegerField(min_value=1, required=False)
    action = UpperChoiceField(choices=SignalAction.choices)
    outcome = UpperChoiceField(choices=SignalOutcome.choices)


class SignalViewSet(viewsets.ReadOnlyModelViewSet):
    """Your signals, newest first. Filter with ?strategy=, ?action=, ?outcome=."""

    queryset = TradingSignal.objects.none()  # for the schema; get_queryset gives the user's own

    def get_serializer_class(self):
        return SignalDetailSerializer if self.action == "retrieve" else SignalSerializer

    @extend_schema(parameters=[SignalQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        signals = (
            TradingSignal.objects.for_owner(self.request.user)
            .select_related("symbol", "strategy")
            .order_by("-generated_at")
        )
        if self.action == "list":
            wanted = list_filters(SignalQuery, self.request)
            if "strategy" in wanted:
                wanted["strategy_id"] = wanted.pop("strategy")
            signals = signals.filter(**wanted)
        return signals
