"""API helpers every app's DRF views use: service errors as 400s, validated list filters, owned related ids, and
the JSON 404 for an /api/ address nothing answers."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from rest_framework import serializers, status
from rest_framework.request import Request


def drf_error(error: DjangoValidationError) -> serializers.ValidationError:
    """A service's ValidationError as a 400 with field messages (non-field ones under non_field_errors)."""
    if hasattr(error, "error_dict"):
        detail = {
            ("non_field_errors" if field == "__all__" else field): messages
            for field, messages in error.message_dict.items()
        }
        return serializers.ValidationError(detail)
    return serializers.ValidationError({"non_field_errors": error.messages})


class UpperChoiceField(serializers.ChoiceField):
    """A query filter's choice read case-insensitively (?action=buy is BUY); blank means no filter."""

    def __init__(self, **kwargs) -> None:
        super().__init__(required=False, allow_blank=True, **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data.upper() if isinstance(data, str) else data)


def list_filters(query_class: type[serializers.Serializer], request: Request) -> dict:
    """A list's filters from the query string, validated: an unknown value is a 400 naming the parameter, never an
    empty list that looks like an answer. Blank filters are left out."""
    query = query_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return {name: value for name, value in query.validated_data.items() if value not in ("", None)}


def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Any /api/ address nothing answers: the API's JSON 404, as DRF's views give, not the site's HTML page."""
    return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)


class OwnedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A related id limited to the requesting user's own rows (another user's id is "does not exist")."""

    def __init__(self, *, owner_lookup: str = "owner", **kwargs):
        self.owner_lookup = owner_lookup
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        queryset = super().get_queryset()
        assert queryset is not None, "every OwnedPrimaryKeyField is given its queryset"
        if request is None:
            return queryset.none()
        return queryset.filter(**{self.owner_lookup: request.user})
