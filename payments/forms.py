"""Money-in forms: validation only."""

import datetime

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
