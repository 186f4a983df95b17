"""Automation forms. Validation only: views pass in the key choices they read from the snapshot."""

import datetime
import uuid
from decimal import Decimal

from django import forms
from django.utils import timezone

from automation import outbound
from automation.models import WEBHOOK_EVENTS, AlertRule, Allowance
from lib.forms import MONEY_DIGITS, MONEY_PLACES, PlainDecimalField, PositiveMoneyField


class KeyPreselectForm(forms.Form):
    """``?key=<id>`` on a rule page: the key the new rule starts with (from the key's page)."""

    key = forms.CharField(required=False, max_length=64)

    def get_initial(self):
        return {"sub_key_id": self.cleaned_data["key"]} if self.is_valid() else {}


class _KeyChoiceForm(forms.Form):
    """A form with a select of Client Keys (from the key snapshot, no upstream call)."""

    sub_key_id = forms.ChoiceField(label="Key", choices=())

    def __init__(self, *args, key_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sub_key_id"].choices = [("", "Choose a key"), *key_choices]


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True, help_text="Shown in the email subject and the history.")
    kind = forms.ChoiceField(label="When", choices=AlertRule.Kind.choices)
    sub_key_id = forms.ChoiceField(label="Key", required=False, choices=(), help_text="For key rules only.")
    threshold = PlainDecimalField(
        required=False, min_value=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
        help_text="USD, percent of the budget, or days, as the rule says. Not needed for spent out.",
    )
    email_to = forms.CharField(
        label="Email to", required=False, max_length=1000, strip=True,
        help_text="Comma-separated addresses; empty: webhooks only.",
    )

    def __init__(self, *args, key_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sub_key_id"].choices = [("", "No key (account rule)"), *key_choices]

    def clean_email_to(self):
        addresses = [address.strip() for address in self.cleaned_data["email_to"].split(",") if address.strip()]
        validate = forms.EmailField().clean
        for address in addresses:
            validate(address)
        return ", ".join(addresses)

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        is_account = kind in (AlertRule.Kind.ACCOUNT_AVAILABLE_UNDER, AlertRule.Kind.ACCOUNT_RUNS_OUT_WITHIN)
        if is_account and cleaned.get("sub_key_id"):
            self.add_error("sub_key_id", "An account rule is not about one key: leave the key empty.")
        if not is_account and not cleaned.get("sub_key_id"):
            self.add_error("sub_key_id", "Choose the key this rule watches.")
        threshold = cleaned.get("threshold")
        if kind != AlertRule.Kind.KEY_SPENT_OUT and threshold is None:
            self.add_error("threshold", "Give the amount, percent or number of days.")
        if kind == AlertRule.Kind.KEY_REMAINING_PERCENT_UNDER and threshold is not None and threshold > 100:
            self.add_error("threshold", "A share of the budget is at most 100 percent.")
        return cleaned


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https", help_text="Where events are POSTed; https.")
    description = forms.CharField(max_length=200, required=False, strip=True)
    events = forms.MultipleChoiceField(
        choices=list(WEBHOOK_EVENTS.items()), widget=forms.CheckboxSelectMultiple, help_text="At least one."
    )

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            outbound.check_url_shape(url)
        except outbound.TargetRefused as refusal:
            raise forms.ValidationError(str(refusal)) from None
        return url


class AutoTopUpRuleForm(_KeyChoiceForm):
    name = forms.CharField(max_length=120, strip=True, help_text="Named in the ledger.")
    threshold = PositiveMoneyField(label="When remaining is under (USD)", noun="threshold", help_text="")
    amount = PositiveMoneyField(label="Add (USD)", noun="amount")
    max_times = forms.IntegerField(label="At most this many times", required=False, min_value=1, max_value=100_000)
    monthly_cap = PositiveMoneyField(
        label="Monthly cap (USD)", noun="cap", required=False, help_text="Per calendar month (UTC); empty: none."
    )


class AllowanceForm(_KeyChoiceForm):
    period = forms.ChoiceField(choices=Allowance.Period.choices)
    target = PositiveMoneyField(
        label="Refill to (USD)", noun="target", help_text="Topped up by target minus remaining at each period start."
    )


class KeyExpiryForm(_KeyChoiceForm):
    expires_at = forms.DateTimeField(
        label="Expires at (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="The worker deletes the key then; its unspent budget returns to the balance.",
    )
    remind_days = forms.IntegerField(label="Remind this many days before", min_value=0, max_value=365, initial=3)
    notify_email = forms.EmailField(label="Customer's email", required=False, help_text="For the reminder; optional.")

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if timezone.is_naive(expires_at):
            expires_at = timezone.make_aware(expires_at, datetime.UTC)
        if expires_at <= timezone.now():
            raise forms.ValidationError("Choose a time in the future.")
        return expires_at


class ConfirmForm(forms.Form):
    """A one-time token: a rotation confirmed twice rotates once."""

    token = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)


class DeclineForm(forms.Form):
    reason = forms.CharField(max_length=500, strip=True, help_text="The customer sees this.")


class BudgetRequestForm(forms.Form):
    amount = PlainDecimalField(
        label="Amount", min_value=Decimal("0.01"), max_value=Decimal(1_000_000), max_digits=MONEY_DIGITS, decimal_places=2,
        help_text="In the units your budget is shown in.",
    )
    note = forms.CharField(max_length=500, required=False, strip=True, widget=forms.Textarea(attrs={"rows": 3}))
    email = forms.EmailField(label="Your email", required=False, help_text="Optional: we write when it is decided.")
