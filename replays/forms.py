from __future__ import annotations

from django import forms

from core.forms import model_choice_field
from replays.models import LLMCacheMode
from signals_app.models import Analyst
from trading.models import Strategy


class ReplayForm(forms.Form):
    strategy = forms.ModelChoiceField(queryset=Strategy.objects.none())
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    analyst = forms.ChoiceField(choices=[("", "the strategy's"), *Analyst.choices], required=False)
    model = forms.CharField(max_length=100, required=False, help_text="blank: the strategy's or the default")
    prompt_version = forms.IntegerField(min_value=1, required=False, help_text="blank: the version in use now")
    budget_usd = forms.DecimalField(min_value=0, max_digits=12, decimal_places=2, required=False, label="Budget (USD)")
    llm_cache = forms.ChoiceField(choices=LLMCacheMode.choices, initial=LLMCacheMode.USE, label="LLM cache")
    anonymise = forms.BooleanField(required=False, help_text="the analyst sees no ticker and relative dates")

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        model_choice_field(self, "strategy").queryset = Strategy.objects.for_owner(owner).select_related("symbol")
