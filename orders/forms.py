"""The manual order form. The order service guards, records and sends; this only checks what was typed."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib.auth.models import User
from django.db import models

from brokers.models import BrokerConnection
from market.models import Symbol
from orders.models import OrderSide, OrderType, TimeInForce
from orders.statuses import OrderStatus

CLIENT_ORDER_ID = re.compile(r"^m-[0-9a-f]{24}$")


class ManualOrderForm(forms.Form):
    client_order_id = forms.CharField(widget=forms.HiddenInput)
    broker_connection = forms.ModelChoiceField(queryset=BrokerConnection.objects.none(), label="Account")
    symbol = forms.ModelChoiceField(queryset=Symbol.objects.order_by("symbol"))
    side = forms.ChoiceField(choices=OrderSide.choices)
    quantity = forms.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal("0.000001"))
    order_type = forms.ChoiceField(choices=OrderType.choices, initial=OrderType.LIMIT, label="Type")
    limit_price = forms.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal("0.000001"), required=False)
    stop_price = forms.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal("0.000001"), required=False)
    tif = forms.ChoiceField(choices=TimeInForce.choices, initial=TimeInForce.DAY, label="Time in force")

    def __init__(self, *args: Any, owner: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        connection = cast("forms.ModelChoiceField[BrokerConnection]", self.fields["broker_connection"])
        connection.queryset = BrokerConnection.objects.filter(owner=owner)
        connection.empty_label = None

    def clean_client_order_id(self) -> str:
        value: str = self.cleaned_data["client_order_id"]
        if not CLIENT_ORDER_ID.match(value):
            raise forms.ValidationError("Reload the page: this form's order id is not valid.")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        order_type = cleaned.get("order_type")
        if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and cleaned.get("limit_price") is None:
            self.add_error("limit_price", "A limit order needs a limit price.")
        if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and cleaned.get("stop_price") is None:
            self.add_error("stop_price", "A stop order needs a stop price.")
        return cleaned


class OrderFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), ("open", "Open"), *OrderStatus.choices], required=False)
    side = forms.ChoiceField(choices=[("", "Any side"), *OrderSide.choices], required=False)
    # trading's Strategy, a layer above: known here as a model
    strategy: forms.ModelChoiceField[models.Model] = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="All strategies"
    )

    def __init__(self, *args: Any, strategies: models.QuerySet[models.Model], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[models.Model]", self.fields["strategy"]).queryset = strategies
