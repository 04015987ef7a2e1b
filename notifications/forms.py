from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from notifications.models import NotificationKind, default_kinds


class ChannelAddForm(forms.Form):
    url = forms.CharField(
        label="Apprise URL",
        max_length=2000,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=(
            "For example tgram://bottoken/ChatID, discord://webhook_id/webhook_token, "
            "slack://TokenA/TokenB/TokenC, or djangomail:// for mail to your account address. "
            "It holds secrets: after saving it is only shown masked."
        ),
    )
    name = forms.CharField(label="Name", max_length=80, required=False, help_text="For example: phone.")
    kinds = forms.MultipleChoiceField(
        label="Send",
        choices=NotificationKind.choices,
        initial=default_kinds,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if any(ch.isspace() for ch in url):
            raise ValidationError("An Apprise URL has no spaces: enter one URL (add more channels for more).")
        return url


class ChannelRoutingForm(forms.Form):
    """Which kinds go to one channel, and whether it is on."""

    kinds = forms.MultipleChoiceField(
        label="Send", choices=NotificationKind.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    enabled = forms.BooleanField(label="On", required=False)
