"""Forms for prompts and the signals filter."""

from __future__ import annotations

from django import forms

from core.forms import model_choice_field
from signals_app.models import PromptTemplate, PromptType, SignalAction, SignalOutcome
from signals_app.prompts import PromptRenderError, check_template_body


class PromptBodyField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 18, "spellcheck": "false"})

    def validate(self, value):
        super().validate(value)
        try:
            check_template_body(value)
        except PromptRenderError as error:
            raise forms.ValidationError(str(error)) from None


class PromptTemplateForm(forms.ModelForm):
    body = PromptBodyField(help_text="Django template syntax; the variables are listed on the right.")
    note = forms.CharField(required=False, max_length=200, help_text="What changed, for the version history.")

    class Meta:
        model = PromptTemplate
        fields = ["name", "prompt_type", "language", "description"]
        widgets = {"description": forms.TextInput}

    def __init__(self, *args, owner, **kwargs):
        self.owner = owner
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if PromptTemplate.objects.filter(owner=self.owner, name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("You already have a prompt with this name.")
        return name


class PromptVersionForm(forms.Form):
    body = PromptBodyField()
    note = forms.CharField(required=False, max_length=200, help_text="What changed, for the version history.")


class SignalFilterForm(forms.Form):
    strategy: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="All strategies"
    )
    action = forms.ChoiceField(choices=[("", "Any action"), *SignalAction.choices], required=False)
    outcome = forms.ChoiceField(choices=[("", "Any outcome"), *SignalOutcome.choices], required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def __init__(self, *args, strategies, **kwargs):
        super().__init__(*args, **kwargs)
        model_choice_field(self, "strategy").queryset = strategies


PROMPT_TYPE_CHOICES = PromptType.choices
