"""Console forms. None of them talks to the upstream: views pass in what they fetched."""

import uuid
from decimal import Decimal

from django import forms
from django.utils.text import format_lazy
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ledger.models import AuditEvent, Outcome
from lib import pricing
from lib.money import usd
from lib.forms import (
    MONEY_PLACES,
    WHOLE_NUMBER_INPUT,
    BoundedDayField,
    ExpectedInputMixin,
    PlainDecimalField,
    PositiveMoneyField,
    expecting,
)

# ---------------------------------------------------------------- Client Keys

KEY_SORT_COLUMNS = {
    "label": _("Label"),
    "key_id": _("Key"),
    "budget": _("Budget"),
    "spent": _("Spent"),
    "remaining": _("Remaining"),
    # Days until the remaining budget is spent at the last 7 days' pace (analytics.forecast).
    "days_left": _("Days left"),
    "rpm_limit": "RPM",
    "concurrent_limit": _("Concurrency"),
    "display_multiplier": _("Multiplier"),
    "created_at": _("Created"),
}
KEY_SORT_CHOICES = [
    (f"{prefix}{column}", format_lazy("{title} {direction}", title=title, direction=direction))
    for column, title in KEY_SORT_COLUMNS.items()
    for prefix, direction in (("", "ascending"), ("-", "descending"))
]
DEFAULT_KEY_SORT = "-created_at"

LOG_PAGE_SIZES = (20, 50, 100)


class FallbackQueryForm(forms.Form):
    """A query-string form whose invalid fields fall back to their defaults instead of failing."""

    defaults: dict = {}

    def get_query(self):
        """The cleaned values, with each missing or invalid field replaced by its default."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        query = {}
        for name, default in self.defaults.items():
            value = cleaned.get(name) if name not in self.errors else None
            query[name] = default if value in (None, "") else value
        return query


class KeyListQueryForm(FallbackQueryForm):
    """Search, sort and page of the Client Keys list."""

    q = forms.CharField(required=False, max_length=200, strip=True)
    sort = forms.ChoiceField(required=False, choices=KEY_SORT_CHOICES)
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)

    defaults = {"q": "", "sort": DEFAULT_KEY_SORT, "page": 1}


class KeyLogsQueryForm(FallbackQueryForm):
    """Page and page size of one key's usage logs."""

    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    limit = forms.TypedChoiceField(required=False, coerce=int, choices=[(size, size) for size in LOG_PAGE_SIZES])

    defaults = {"page": 1, "limit": LOG_PAGE_SIZES[0]}


RPM_MESSAGE = _("Requests per minute must be a whole number from 1 to 60.")
MULTIPLIER_MESSAGE = _("The multiplier must be a number from 1 to 1,000, e.g. 1 (no markup) or 1.5.")


# derouter's own limit for a key's display multiplier.
MAX_MULTIPLIER = Decimal(1000)


def _rpm_field(**kwargs):
    return forms.IntegerField(
        label=_("Requests per minute"), min_value=1, max_value=60, widget=WHOLE_NUMBER_INPUT, error_messages=expecting(RPM_MESSAGE),
        **kwargs,
    )


def _multiplier_field(**kwargs):
    messages = expecting(
        MULTIPLIER_MESSAGE,
        max_decimal_places=_("Use at most 4 decimals."),
        max_digits=_("That multiplier is too large."),
        max_whole_digits=_("That multiplier is too large."),
    )
    return PlainDecimalField(
        label=_("Display multiplier"),
        min_value=Decimal(1),
        max_value=MAX_MULTIPLIER,
        max_digits=10,
        decimal_places=MONEY_PLACES,
        error_messages=messages,
        **{"help_text": _("1 to 1,000. What the client sees is real money times this: 4 shows $10.00 as $40.00."), **kwargs},
    )


class _FixedFieldsMixin:
    """Leave out the fields derouter does not keep (its stored conventions): a form offers only what will hold."""

    def leave_out_fixed(self, conventions, *, markup_settable):
        """Drop rpm_limit where derouter fixes rate limits, display_multiplier where no markup can be set."""
        if not conventions.limits_settable:
            self.fields.pop("rpm_limit", None)
        if not markup_settable:
            self.fields.pop("display_multiplier", None)
            self.fields.pop("customer_budget", None)  # the customer sees the cost
        return self


class PriceForm(forms.Form):
    """A key's price the way resellers price: any two of the customer's amount, your cost and the markup.

    ``clean`` fills in the third (``lib.pricing``): ``budget`` (your cost, in real dollars),
    ``display_multiplier`` and ``price`` (a Price with the margin) are always in cleaned_data.
    """

    customer_budget = PositiveMoneyField(
        label=_("The customer gets (USD)"), noun="customer's amount", required=False,
        help_text=_("The budget your customer sees on their key."),
    )
    budget = PositiveMoneyField(
        label=_("Budget (USD), what you pay"), noun="budget", required=False,
        help_text=_("Moved from your available balance to the key: your cost."),
    )
    display_multiplier = _multiplier_field(
        required=False, help_text=_("Your markup: the customer sees your cost times this. Give any two of the three.")
    )

    def clean(self):
        cleaned = super().clean()
        if any(name in self.errors for name in ("customer_budget", "budget", "display_multiplier")):
            return cleaned
        try:
            price = pricing.price_from(cost=cleaned.get("budget"), customer=cleaned.get("customer_budget"),
                                       multiplier=cleaned.get("display_multiplier"))
        except pricing.PriceError as error:
            field = error.field if error.field in self.fields else None
            self.add_error(field, error.message)
            return cleaned
        if not Decimal(1) <= price.multiplier <= MAX_MULTIPLIER:
            self.add_error("display_multiplier" if "display_multiplier" in self.fields else None, MULTIPLIER_MESSAGE)
        elif price.cost <= 0:
            self.add_error("customer_budget", _("That comes to less than $0.0001 of your balance: enter more."))
        elif price.cost > settings.MAX_KEY_BUDGET:
            self.add_error("budget", _("Your cost must be at most %(limit)s, the most one move may add.")
                           % {"limit": usd(settings.MAX_KEY_BUDGET)})
        else:
            cleaned.update(budget=price.cost, display_multiplier=price.multiplier, price=price)
        return cleaned


class KeyCreateForm(_FixedFieldsMixin, ExpectedInputMixin, PriceForm):
    """A new Client Key; the view checks the budget against what is available."""

    expected = {"label": _("The label is optional text of at most 100 characters, e.g. the customer's name.")}

    label = forms.CharField(label=_("Label"), required=False, max_length=100, strip=True, help_text=_("Who the key is for, e.g. the customer's name."))
    rpm_limit = _rpm_field(required=False, initial=60, help_text=_("1 to 60; empty means 60."))
    # One per rendered form: a double click or a reload finds the first attempt.
    # A post without one (not from our form) gets a fresh token in clean_token.
    token = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4, required=False)

    field_order = ["label", "budget", "display_multiplier", "customer_budget", "rpm_limit", "token"]

    def clean_rpm_limit(self):
        rpm_limit = self.cleaned_data["rpm_limit"]
        return 60 if rpm_limit is None else rpm_limit

    def clean_token(self):
        return self.cleaned_data["token"] or uuid.uuid4()

    def clean(self):
        cleaned = super().clean()
        cleaned.setdefault("rpm_limit", None)  # left out: derouter's fixed limit
        cleaned.setdefault("display_multiplier", Decimal(1))  # left out: no markup can be set
        return cleaned


class KeyEditForm(_FixedFieldsMixin, ExpectedInputMixin, forms.Form):
    """The editable settings of a Client Key."""

    expected = KeyCreateForm.expected

    label = forms.CharField(label=_("Label"), required=False, max_length=100, strip=True)
    rpm_limit = _rpm_field()
    display_multiplier = _multiplier_field()


class MultiplierPreviewForm(forms.Form):
    """Just the multiplier, for the live preview while editing."""

    display_multiplier = KeyEditForm.base_fields["display_multiplier"]


# ---------------------------------------------------------------- Top-ups, ledger, usage logs, audit trail

LEDGER_PAGE_SIZE = 50
ACCOUNT_ONLY = "account"


class TopUpForm(ExpectedInputMixin, forms.Form):
    """Money to add to a Client Key, with the payment it stands for and the form's one-time token.

    Given the key's ``multiplier`` (to whoever may see margins), the amount may be typed as
    what the customer gets instead: ``amount`` (what your balance pays) is then worked out
    from it, to the ledger's 4 decimals. Without it, only what you pay is offered.
    """

    expected = {"note": _("Enter the payment's reference, e.g. the invoice number or payment id (at most 200 characters).")}

    amount = PositiveMoneyField(label=_("Amount (USD)"), noun="amount", required=False,
                                help_text=_("What your balance pays: moved from your available balance to the key."))
    customer_amount = PositiveMoneyField(label=_("Or what the customer gets (USD)"), noun="customer's amount",
                                         required=False, help_text=_("Added to the budget the customer sees."))
    note = forms.CharField(
        label=_("Reference"),
        max_length=200,
        strip=True,
        help_text=_("Invoice number or payment id, for the ledger."),
    )
    # Written with the ledger row before the upstream call: the same token twice
    # moves money once. A post without one (not from our form) gets a fresh token.
    token = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, multiplier=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.multiplier = multiplier
        if multiplier is None:
            self.fields.pop("customer_amount")

    def clean_token(self):
        return self.cleaned_data["token"] or uuid.uuid4()

    def clean(self):
        cleaned = super().clean()
        if "amount" in self.errors or "customer_amount" in self.errors:
            return cleaned
        amount, customer = cleaned.get("amount"), cleaned.get("customer_amount")
        if amount is None and customer is None:
            self.add_error("amount", _("Enter the amount in dollars, e.g. 25 or 12.50."))
        elif amount is None:
            try:
                cleaned["amount"] = pricing.price_from(customer=customer, multiplier=self.multiplier).cost
            except pricing.PriceError as error:
                self.add_error("customer_amount", error.message)
        elif customer is not None and abs(amount * self.multiplier - customer) >= Decimal("0.01"):
            self.add_error("customer_amount", _("The two amounts do not agree at this key's markup: give one of them."))
        return cleaned


class ReclaimForm(ExpectedInputMixin, forms.Form):
    """Part of a key's unspent budget to take back to the balance, why, and the form's one-time token."""

    expected = {"note": _("The reason is optional text of at most 200 characters, e.g. the customer's refund.")}

    amount = PositiveMoneyField(label=_("Amount to take back (USD)"), noun="amount")
    note = forms.CharField(label=_("Reason"), required=False, max_length=200, strip=True,
                           help_text=_("For the ledger, e.g. a refund's reference."))
    token = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def clean_token(self):
        return self.cleaned_data["token"] or uuid.uuid4()


class _KeyChoiceMixin:
    """Render a query field as a select of keys whose choices the view supplies."""

    key_field = "sub_key_id"
    any_key_label = _("All keys")

    def set_key_choices(self, key_choices, extra=()):
        self.fields[self.key_field].widget = forms.Select(
            choices=[("", self.any_key_label), *extra, *key_choices]
        )


class LedgerQueryForm(_KeyChoiceMixin, FallbackQueryForm):
    """Which top-ups the ledger and its CSV export show."""

    sub_key_id = forms.UUIDField(required=False, label=_("Key"))
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=[("", _("Any outcome")), *Outcome.choices])

    defaults = {"sub_key_id": None, "outcome": ""}


class UsageLogQueryForm(FallbackQueryForm):
    """Which mirrored usage rows the log page, its totals and its CSV export show."""

    client = forms.CharField(
        required=False, max_length=200, strip=True, label=_("Client"),
        help_text=_("A client's label (or part of it), or “account” for the Account Key's own requests."),
    )
    model = forms.CharField(required=False, max_length=128, strip=True, label=_("Model"))
    date_from = BoundedDayField(required=False, label=_("From (UTC day)"))
    date_to = BoundedDayField(required=False, label=_("To (UTC day)"))
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    limit = forms.TypedChoiceField(
        required=False, coerce=int, label=_("Per page"), choices=[(size, size) for size in LOG_PAGE_SIZES]
    )

    defaults = {"client": "", "model": "", "date_from": None, "date_to": None, "page": 1, "limit": LOG_PAGE_SIZES[0]}

    def set_model_choices(self, models):
        self.fields["model"].widget = forms.Select(choices=[("", _("Any model")), *((model, model) for model in models)])

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", _("The end of the range is before its start."))
        return cleaned


class AuditQueryForm(_KeyChoiceMixin, FallbackQueryForm):
    """Which audit events the trail shows."""

    action = forms.ChoiceField(label=_("Action"), required=False, choices=[("", _("Any action")), *AuditEvent.Action.choices])
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=[("", _("Any outcome")), *Outcome.choices])
    sub_key_id = forms.UUIDField(required=False, label=_("Key"))

    defaults = {"action": "", "outcome": "", "sub_key_id": None}

    def hide_actions(self, actions):
        """Leave these actions out of the choices (a choice of them then falls back to any action)."""
        field = self.fields["action"]
        field.choices = [(value, label) for value, label in field.choices if value not in actions]
