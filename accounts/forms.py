from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm, UsernameField
from django.utils.translation import gettext_lazy as _

from accounts.models import Role
from lib.forms import MONEY_DIGITS, MONEY_PLACES, ExpectedInputMixin, PlainDecimalField

ROLE_EXPECTED = _("Choose a role: owner or staff.")
CAP_EXPECTED = _("Give the cap in dollars, e.g. 250 or 99.50, or leave it empty for the default.")
EMAIL_EXPECTED = _("Enter an email address, e.g. ana@example.com.")

CAP_FIELD = PlainDecimalField(
    label=_("Daily top-up cap (USD)"),
    required=False,
    max_digits=MONEY_DIGITS,
    decimal_places=MONEY_PLACES,
    help_text=_("For staff: USD they may top up per UTC day. Empty: the STAFF_DAILY_TOPUP_CAP setting. Owners have none."),
)


class ConsoleLoginForm(ExpectedInputMixin, AuthenticationForm):
    """Username and password for owners and staff."""

    expected = {"username": _("Enter your console username."), "password": _("Enter your password.")}
    error_messages = {
        "invalid_login": _("That username and password do not match a console user. Check both (they are case-sensitive)."),
        "inactive": _("This user is disabled. An owner can enable it again on the Users page."),
    }

    # UsernameField strips and NFKC-normalises, as accounts.throttle.normalize_username does.
    username = UsernameField(label=_("Username"), max_length=150, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))


class SecondFactorForm(ExpectedInputMixin, forms.Form):
    """The six digits from the authenticator app, or one recovery code."""

    expected = {"code": _("Enter the six digits your authenticator app shows, or one of your recovery codes.")}

    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        help_text=_("The six digits your authenticator app shows, or one of your recovery codes."),
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "one-time-code", "spellcheck": "false", "autocapitalize": "off"}
        ),
    )


class InvitationForm(ExpectedInputMixin, forms.Form):
    """Who to invite, as what, and (for staff) their daily top-up cap."""

    expected = {"email": EMAIL_EXPECTED, "role": ROLE_EXPECTED, "daily_topup_cap": CAP_EXPECTED}

    email = forms.EmailField(label=_("Email address"), help_text=_("Where the invitation link goes."))
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.STAFF)
    daily_topup_cap = CAP_FIELD


class UserAccessForm(ExpectedInputMixin, forms.Form):
    """A user's role and daily top-up cap, as an owner sets them on the users page."""

    expected = {"role": ROLE_EXPECTED, "daily_topup_cap": CAP_EXPECTED}

    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
    daily_topup_cap = CAP_FIELD


class MarginsForm(forms.Form):
    """Whether a staff member may see real costs and margins (owners always do)."""

    can_see_margins = forms.BooleanField(required=False)


class TwoFactorPolicyForm(forms.Form):
    require_two_factor = forms.BooleanField(label=_("Require two-factor sign-in for everyone"), required=False)


class AcceptInvitationForm(ExpectedInputMixin, UserCreationForm):
    """The invitee chooses their own username and password; nobody else ever knows it."""

    expected = {
        "username": _("Choose a username of at most 150 letters, digits and @ . + - _ (no spaces)."),
        "password1": _("Choose a password."),
        "password2": _("Type the same password again."),
    }
    error_messages = {"password_mismatch": _("The two passwords differ: type the same password in both fields.")}

    class Meta(UserCreationForm.Meta):
        fields = ("username",)
