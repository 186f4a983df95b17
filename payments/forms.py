"""Money-in forms: validation only."""

import datetime
import re
from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from lib.forms import (
    MONEY_DIGITS,
    MONEY_PLACES,
    WHOLE_NUMBER_INPUT,
    DayInput,
    ExpectedInputMixin,
    PlainDecimalField,
)
from payments.codes import MAX_BATCH_SIZE
from payments.models import CodeBatch


class CodeBatchForm(ExpectedInputMixin, forms.Form):
    expected = {
        "count": format_lazy(_("Give the number of codes, a whole number from 1 to {most}."), most=f"{MAX_BATCH_SIZE:,}"),
        "amount": _("Give what each code is worth as a plain number, e.g. 25 or 12.50 (at most 4 decimals)."),
        "unit": _("Choose what the amount is counted in."),
        "kind": _("Choose what a code does: top up a key, or make a new one."),
        "expires_on": _("Give the last day the codes can be used (UTC) as a date, or leave it empty."),
        "note": _("Keep the note to at most 200 characters."),
    }
    count = forms.IntegerField(
        label=_("Number of codes"), min_value=1, max_value=MAX_BATCH_SIZE, initial=10, widget=WHOLE_NUMBER_INPUT
    )
    amount = PlainDecimalField(
        label=_("Each code is worth"), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
        help_text=_("In the unit below."),
    )
    unit = forms.ChoiceField(label=_("Counted in"), choices=CodeBatch.Unit.choices, initial=CodeBatch.Unit.CUSTOMER,
                             widget=forms.RadioSelect)
    kind = forms.ChoiceField(label=_("Each code"), choices=CodeBatch.Kind.choices, initial=CodeBatch.Kind.TOPUP,
                             widget=forms.RadioSelect, required=False)
    expires_on = forms.DateField(
        label=_("Usable until"), required=False, widget=DayInput,
        help_text=_("The last day (UTC) a code can be redeemed; empty: never expires."),
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=200, strip=True,
                           help_text=_("For you: where the codes are sold, an order number."))

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise forms.ValidationError(_("Each code must be worth more than 0."))
        if amount > settings.MAX_KEY_BUDGET:
            raise forms.ValidationError(_("Each code may be worth at most %(MAX_KEY_BUDGET)s.") % {"MAX_KEY_BUDGET": f"{settings.MAX_KEY_BUDGET:,}"})
        return amount

    def clean_kind(self):
        return self.cleaned_data["kind"] or CodeBatch.Kind.TOPUP

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == CodeBatch.Kind.STARTER and cleaned.get("unit") == CodeBatch.Unit.CUSTOMER:
            self.add_error("unit", _("A starter code makes a new key with a budget in real money: count it in USD."))
        return cleaned

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.now().astimezone(datetime.UTC).date():
            raise forms.ValidationError(_("That day is over already: choose today or a later day."))
        return day

    def get_expires_at(self):
        """The end of the chosen day, UTC (the codes work through that whole day)."""
        day = self.cleaned_data["expires_on"]
        if day is None:
            return None
        return datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(), tzinfo=datetime.UTC)


class CodeSettingsForm(forms.Form):
    staff_may_manage_codes = forms.BooleanField(
        label=_("Staff may create and revoke codes"), required=False,
        help_text=_("Owners always may. Staff can always see the codes' states."),
    )


class RedeemForm(ExpectedInputMixin, forms.Form):
    expected = {"code": _("Type the code as you received it, e.g. ABCDE-FGHJK-…; dashes and spaces do not matter.")}
    code = forms.CharField(
        label=_("Redemption code"), max_length=60, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}),
        help_text=_("Dashes and spaces do not matter, nor does upper or lower case."),
    )


CURRENCY_CODE = re.compile(r"[a-z]{3}", re.ASCII)


class StripeSettingsForm(ExpectedInputMixin, forms.Form):
    """Stripe's keys: the secret and the webhook secret are write-only (empty keeps the saved one)."""

    expected = {
        "publishable_key": _("Paste the publishable key from Stripe's dashboard; it starts with pk_."),
        "secret_key": _("Paste the secret key from Stripe's dashboard; it starts with sk_ or rk_."),
        "webhook_secret": _("Paste the endpoint's signing secret from Stripe's dashboard; it starts with whsec_."),
        "daily_orders_per_key": _("Give a whole number of orders from 1 to 1,000."),
    }
    enabled = forms.BooleanField(label=_("Customers may pay by card"), required=False)
    publishable_key = forms.CharField(label=_("Publishable key"), max_length=200, required=False, strip=True)
    secret_key = forms.CharField(
        label=_("Secret key"), max_length=300, required=False, strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=_("Never shown again once saved; leave empty to keep the saved one."),
    )
    webhook_secret = forms.CharField(
        label=_("Webhook signing secret"), max_length=300, required=False, strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=_("Of the endpoint you add in Stripe for payment_intent.succeeded and charge.refunded. Leave empty to keep the saved one."),
    )
    daily_orders_per_key = forms.IntegerField(
        label=_("Orders per customer per day"), min_value=1, max_value=1000, initial=5, widget=WHOLE_NUMBER_INPUT
    )

    def clean_publishable_key(self):
        key = self.cleaned_data["publishable_key"]
        if key and not key.startswith("pk_"):
            raise forms.ValidationError(_("The publishable key starts with pk_."))
        return key

    def clean_secret_key(self):
        key = self.cleaned_data["secret_key"]
        if key and not key.startswith(("sk_", "rk_")):
            raise forms.ValidationError(_("The secret key starts with sk_ or rk_ (never paste the publishable key here)."))
        return key

    def clean_webhook_secret(self):
        secret = self.cleaned_data["webhook_secret"]
        if secret and not secret.startswith("whsec_"):
            raise forms.ValidationError(_("The signing secret starts with whsec_."))
        return secret


class PackageForm(ExpectedInputMixin, forms.Form):
    expected = {
        "name": _("Give the package a name of at most 80 characters, e.g. “Starter”."),
        "price": _("Give the price as a plain number with at most 2 decimals, e.g. 20 or 9.99."),
        "currency": _("Give the currency as its three-letter code, e.g. usd or eur."),
        "credit": _("Give the amount credited as a plain number, e.g. 25 (at most 4 decimals)."),
    }
    name = forms.CharField(label=_("Name"), max_length=80, strip=True)
    price = PlainDecimalField(label=_("Price"), max_digits=10, decimal_places=2)
    currency = forms.CharField(label=_("Currency"), max_length=3, min_length=3, strip=True, initial="usd",
                               help_text=_("Three letters, e.g. usd, eur, gbp."))
    credit = PlainDecimalField(label=_("Credited (customer's units)"), max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES,
                               help_text=_("What the customer's key gets, in the units it sees; converted with its markup."))

    def clean_price(self):
        price = self.cleaned_data["price"]
        if price < Decimal("0.50"):
            raise forms.ValidationError(_("Stripe takes payments of at least 0.50."))
        return price

    def clean_currency(self):
        currency = self.cleaned_data["currency"].lower()
        if not CURRENCY_CODE.fullmatch(currency):
            raise forms.ValidationError(_("Give the currency as its three-letter code, e.g. usd or eur."))
        return currency

    def clean_credit(self):
        credit = self.cleaned_data["credit"]
        if credit <= 0 or credit > settings.MAX_KEY_BUDGET:
            raise forms.ValidationError(_("The credit must be more than 0 and at most %(MAX_KEY_BUDGET)s.") % {"MAX_KEY_BUDGET": f"{settings.MAX_KEY_BUDGET:,}"})
        return credit
