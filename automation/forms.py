"""Automation forms. Validation only: views pass in the key choices they read from the snapshot."""

import datetime
import uuid
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from automation import outbound
from automation.models import WEBHOOK_EVENTS, AlertRule, Allowance
from lib import stored_text
from lib.forms import MONEY_DIGITS, MONEY_PLACES, ExpectedInputMixin, PlainDecimalField, PositiveMoneyField

KEY_EXPECTED = _("Choose a key from the list.")
NAME_EXPECTED = _("Give it a name of at most {} characters, e.g. “Acme running low”.")


class KeyPreselectForm(forms.Form):
    """``?key=<id>`` on a rule page: the key the new rule starts with (from the key's page)."""

    key = forms.CharField(required=False, max_length=64)

    def get_initial(self):
        return {"sub_key_id": self.cleaned_data["key"]} if self.is_valid() else {}


class _KeyChoiceForm(ExpectedInputMixin, forms.Form):
    """A form with a select of Client Keys (from the key snapshot, no upstream call)."""

    expected = {"sub_key_id": KEY_EXPECTED}

    sub_key_id = forms.ChoiceField(label=_("Key"), choices=())

    def __init__(self, *args, key_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sub_key_id"].choices = [("", "Choose a key"), *key_choices]


class AlertRuleForm(ExpectedInputMixin, forms.Form):
    expected = {
        "name": NAME_EXPECTED.format(200),
        "kind": _("Choose when the alert fires."),
        "sub_key_id": _("Choose a key from the list, or none for an account rule."),
        "threshold": _("Give the threshold as a plain number of dollars, percent or days, e.g. 25."),
        "email_to": _("Enter email addresses separated by commas (at most 1,000 characters), or leave it empty."),
    }
    name = forms.CharField(label=_("Name"), max_length=200, strip=True, help_text=_("Shown in the email subject and the history."))
    kind = forms.ChoiceField(label=_("When"), choices=AlertRule.Kind.choices)
    sub_key_id = forms.ChoiceField(label=_("Key"), required=False, choices=(), help_text=_("For key rules only."))
    threshold = PlainDecimalField(
        label=_("Threshold"), required=False, min_value=Decimal(0), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
        help_text=_("USD, percent of the budget, or days, as the rule says. Not needed for spent out."),
    )
    email_to = forms.CharField(
        label=_("Email to"), required=False, max_length=1000, strip=True,
        help_text=_("Comma-separated addresses; empty: webhooks only."),
    )

    def __init__(self, *args, key_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sub_key_id"].choices = [("", _("No key (account rule)")), *key_choices]

    def clean_email_to(self):
        addresses = [address.strip() for address in self.cleaned_data["email_to"].split(",") if address.strip()]
        validate = forms.EmailField().clean
        for address in addresses:
            try:
                validate(address)
            except forms.ValidationError:
                raise forms.ValidationError(
                    _("“%(address)s” is not an email address. Separate addresses with commas, e.g. ana@example.com, ops@example.com.") % {"address": address}
                ) from None
        return ", ".join(addresses)

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        is_account = kind in (AlertRule.Kind.ACCOUNT_AVAILABLE_UNDER, AlertRule.Kind.ACCOUNT_RUNS_OUT_WITHIN)
        if is_account and cleaned.get("sub_key_id"):
            self.add_error("sub_key_id", _("An account rule is not about one key: leave the key empty."))
        if not is_account and not cleaned.get("sub_key_id"):
            self.add_error("sub_key_id", _("Choose the key this rule watches."))
        threshold = cleaned.get("threshold")
        if kind != AlertRule.Kind.KEY_SPENT_OUT and threshold is None:
            self.add_error("threshold", _("Give the amount, percent or number of days."))
        if kind == AlertRule.Kind.KEY_REMAINING_PERCENT_UNDER and threshold is not None and threshold > 100:
            self.add_error("threshold", _("A share of the budget is at most 100 percent."))
        return cleaned


class WebhookEndpointForm(ExpectedInputMixin, forms.Form):
    expected = {
        "url": _("Enter the receiver's https:// address (at most 500 characters), e.g. https://example.com/hooks/derouter."),
        "description": _("Keep the description to 200 characters or fewer."),
        "events": _("Tick at least one event to send."),
    }
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https", help_text=_("Where events are POSTed; https."))
    description = forms.CharField(label=_("Description"), max_length=200, required=False, strip=True)
    events = forms.MultipleChoiceField(
        label=_("Events"), choices=list(WEBHOOK_EVENTS.items()), widget=forms.CheckboxSelectMultiple, help_text=_("At least one.")
    )

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            outbound.check_target_on_save(url)
        except outbound.TargetRefused as refusal:
            raise forms.ValidationError(stored_text.read(str(refusal))) from None
        return url


class AutoTopUpRuleForm(_KeyChoiceForm):
    expected = {
        **_KeyChoiceForm.expected,
        "name": NAME_EXPECTED.format(120),
        "max_times": _("A whole number from 1 to 100,000, or empty for no limit."),
    }
    name = forms.CharField(label=_("Name"), max_length=120, strip=True, help_text=_("Named in the ledger."))
    threshold = PositiveMoneyField(label=_("When remaining is under (USD)"), noun=_("threshold"), help_text="")
    amount = PositiveMoneyField(label=_("Add (USD)"), noun=_("amount"))
    max_times = forms.IntegerField(label=_("At most this many times"), required=False, min_value=1, max_value=100_000)
    monthly_cap = PositiveMoneyField(
        label=_("Monthly cap (USD)"), noun=_("cap"), required=False, help_text=_("Per calendar month (UTC); empty: none.")
    )


class AllowanceForm(_KeyChoiceForm):
    expected = {**_KeyChoiceForm.expected, "period": _("Choose how often the budget refills.")}
    period = forms.ChoiceField(label=_("Period"), choices=Allowance.Period.choices)
    target = PositiveMoneyField(
        label=_("Refill to (USD)"), noun=_("target"), help_text=_("Topped up by target minus remaining at each period start.")
    )


class KeyExpiryForm(_KeyChoiceForm):
    expected = {
        **_KeyChoiceForm.expected,
        "expires_at": _("Enter the date and time the key expires, in UTC, e.g. 2026-12-31 18:00."),
        "remind_days": _("A whole number of days from 0 to 365, e.g. 3."),
        "notify_email": _("Enter the customer's email address, e.g. ana@example.com, or leave it empty."),
    }
    expires_at = forms.DateTimeField(
        label=_("Expires at (UTC)"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("The worker deletes the key then; its unspent budget returns to the balance."),
    )
    remind_days = forms.IntegerField(label=_("Remind this many days before"), min_value=0, max_value=365, initial=3)
    notify_email = forms.EmailField(label=_("Customer's email"), required=False, help_text=_("For the reminder; optional."))

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if timezone.is_naive(expires_at):
            expires_at = timezone.make_aware(expires_at, datetime.UTC)
        if expires_at <= timezone.now():
            raise forms.ValidationError(_("Choose a time in the future."))
        return expires_at


class ConfirmForm(forms.Form):
    """A one-time token: a rotation confirmed twice rotates once."""

    token = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)


class DeclineForm(ExpectedInputMixin, forms.Form):
    expected = {"reason": _("Say why in at most 500 characters; the customer sees it.")}
    reason = forms.CharField(label=_("Reason"), max_length=500, strip=True, help_text=_("The customer sees this."))


class BudgetRequestForm(ExpectedInputMixin, forms.Form):
    expected = {
        "amount": _("Enter the amount as a plain number from 0.01 to 1,000,000 with at most 2 decimals, e.g. 50."),
        "note": _("Keep the note to 500 characters or fewer."),
        "email": _("Enter your email address, e.g. ana@example.com, or leave it empty."),
    }
    amount = PlainDecimalField(
        label=_("Amount"), min_value=Decimal("0.01"), max_value=Decimal(1_000_000), max_digits=MONEY_DIGITS, decimal_places=2,
        help_text=_("In the units your budget is shown in."),
    )
    note = forms.CharField(label=_("Note"), max_length=500, required=False, strip=True, widget=forms.Textarea(attrs={"rows": 3}))
    email = forms.EmailField(label=_("Your email"), required=False, help_text=_("Optional: we write when it is decided."))
