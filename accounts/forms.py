from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm, UsernameField

from accounts.models import Role
from lib.forms import MONEY_DIGITS, MONEY_PLACES, ExpectedInputMixin, PlainDecimalField

ROLE_EXPECTED = "Choose a role: owner or staff."
CAP_EXPECTED = "Give the cap in dollars, e.g. 250 or 99.50, or leave it empty for the default."
EMAIL_EXPECTED = "Enter an email address, e.g. ana@example.com."

CAP_FIELD = PlainDecimalField(
    label="Daily top-up cap (USD)",
    required=False,
    max_digits=MONEY_DIGITS,
    decimal_places=MONEY_PLACES,
    help_text="For staff: USD they may top up per UTC day. Empty: the STAFF_DAILY_TOPUP_CAP setting. Owners have none.",
)


class ConsoleLoginForm(ExpectedInputMixin, AuthenticationForm):
    """Username and password for owners and staff."""

    expected = {"username": "Enter your console username.", "password": "Enter your password."}
    error_messages = {
        "invalid_login": "That username and password do not match a console user. Check both (they are case-sensitive).",
        "inactive": "This user is disabled. An owner can enable it again on the Users page.",
    }

    # UsernameField strips and NFKC-normalises, as accounts.throttle.normalize_username does.
    username = UsernameField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))


class SecondFactorForm(ExpectedInputMixin, forms.Form):
    """The six digits from the authenticator app, or one recovery code."""

    expected = {"code": "Enter the six digits your authenticator app shows, or one of your recovery codes."}

    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The six digits your authenticator app shows, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "one-time-code", "spellcheck": "false", "autocapitalize": "off"}
        ),
    )


class InvitationForm(ExpectedInputMixin, forms.Form):
    """Who to invite, as what, and (for staff) their daily top-up cap."""

    expected = {"email": EMAIL_EXPECTED, "role": ROLE_EXPECTED, "daily_topup_cap": CAP_EXPECTED}

    email = forms.EmailField(label="Email address", help_text="Where the invitation link goes.")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.STAFF)
    daily_topup_cap = CAP_FIELD


class UserAccessForm(ExpectedInputMixin, forms.Form):
    """A user's role and daily top-up cap, as an owner sets them on the users page."""

    expected = {"role": ROLE_EXPECTED, "daily_topup_cap": CAP_EXPECTED}

    role = forms.ChoiceField(label="Role", choices=Role.choices)
    daily_topup_cap = CAP_FIELD


class MarginsForm(forms.Form):
    """Whether a staff member may see real costs and margins (owners always do)."""

    can_see_margins = forms.BooleanField(required=False)


class TwoFactorPolicyForm(forms.Form):
    require_two_factor = forms.BooleanField(label="Require two-factor sign-in for everyone", required=False)


class AcceptInvitationForm(ExpectedInputMixin, UserCreationForm):
    """The invitee chooses their own username and password; nobody else ever knows it."""

    expected = {
        "username": "Choose a username of at most 150 letters, digits and @ . + - _ (no spaces).",
        "password1": "Choose a password.",
        "password2": "Type the same password again.",
    }
    error_messages = {"password_mismatch": "The two passwords differ: type the same password in both fields."}

    class Meta(UserCreationForm.Meta):
        fields = ("username",)
