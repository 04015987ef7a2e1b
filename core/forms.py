"""What every app's forms share."""

from __future__ import annotations

from django import forms


def model_choice_field(form: forms.BaseForm, name: str) -> forms.ModelChoiceField:
    """The form's field `name` as the model choice field it is (a ForeignKey's or a ManyToManyField's, or one the
    form declares), so its queryset and empty label can be set."""
    field = form.fields[name]
    assert isinstance(field, forms.ModelChoiceField), f"{name} is a {type(field).__name__}, not a model choice"
    return field
