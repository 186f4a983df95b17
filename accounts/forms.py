from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm, UsernameField

from accounts.models import Role
from lib.forms import MONEY_DIGITS, MONEY_PLACES, PlainDecimalField

CAP_FIELD = PlainDecimalField(
    label="Daily top-up cap (USD)",
    required=False,
    max_digits=MONEY_DIGITS,
    decimal_places=MONEY_PLACES,
    help_text="For staff: USD they may top up per UTC day. Empty: the STAFF_DAILY_TOPUP_CAP setting. Owners have none.",
)


class ConsoleLoginForm(AuthenticationForm):
    """Username and password for owners and staff."""

    # UsernameField strips and NFKC-normalises, as accounts.throttle.normalize_username does.
    username = UsernameField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))


class SecondFactorForm(forms.Form):
    """The six digits from the authenticator app, or one recovery code."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The six digits your authenticator app shows, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "one-time-code", "spellcheck": "false", "autocapitalize": "off"}
        ),
    )


class InvitationForm(forms.Form):
    """Who to invite, as what, and (for staff) their daily top-up cap."""

    email = forms.EmailField(label="Email address", help_text="Where the invitation link goes.")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.STAFF)
    daily_topup_cap = CAP_FIELD


class UserAccessForm(forms.Form):
    """A user's role and daily top-up cap, as an owner sets them on the users page."""

    role = forms.ChoiceField(label="Role", choices=Role.choices)
    daily_topup_cap = CAP_FIELD


class MarginsForm(forms.Form):
    """Whether a staff member may see real costs and margins (owners always do)."""

    can_see_margins = forms.BooleanField(required=False)


class TwoFactorPolicyForm(forms.Form):
    require_two_factor = forms.BooleanField(label="Require two-factor sign-in for everyone", required=False)


class AcceptInvitationForm(UserCreationForm):
    """The invitee chooses their own username and password; nobody else ever knows it."""

    class Meta(UserCreationForm.Meta):
        fields = ("username",)
