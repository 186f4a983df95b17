"""Forms of the client portal: sign-in with a Client Key, log paging, time zone."""

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.portal_sessions import get_time_zone_choices
from lib.forms import ExpectedInputMixin

# Said for a malformed, wrong and deleted key alike, so none can be told apart.
INVALID_KEY_MESSAGE = _("That Client Key was not accepted. Check that you pasted all of it and try again.")

CLIENT_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_\-]{8,200}")

LOG_PAGE_SIZES = (20, 50, 100)
DEFAULT_LOG_PAGE_SIZE = 20
MAX_LOG_PAGE = 100_000


class PortalLoginForm(ExpectedInputMixin, forms.Form):
    """The Client Key, checked for shape here and against derouter by the view."""

    expected = {"client_key": _("Paste your Client Key: it starts with sk-.")}

    client_key = forms.CharField(
        label=_("Client Key"),
        # A pasted key often brings a space or a newline along.
        strip=True,
        widget=forms.PasswordInput(
            attrs={"autocomplete": "off", "autofocus": True, "spellcheck": "false", "autocapitalize": "off"}
        ),
    )

    def clean(self):
        cleaned = super().clean()
        client_key = cleaned.get("client_key")
        # The shape's bounds cap the length, so an absurd value gets the same answer.
        if client_key is not None and not CLIENT_KEY_SHAPE.fullmatch(client_key):
            raise forms.ValidationError(INVALID_KEY_MESSAGE)
        return cleaned

    def reject(self, message=INVALID_KEY_MESSAGE):
        """Mark the form failed with the one message every bad key gets (or why the key ended)."""
        self.add_error(None, message)


class LogsQueryForm(forms.Form):
    """Page and page size of the logs; a bad value falls back to its default."""

    page = forms.IntegerField(min_value=1, max_value=MAX_LOG_PAGE, required=False)
    limit = forms.TypedChoiceField(
        choices=[(size, str(size)) for size in LOG_PAGE_SIZES], coerce=int, required=False
    )

    def get_page_and_limit(self):
        """The requested page and size, each corrected to its default when invalid."""
        self.is_valid()
        page = self.cleaned_data.get("page") or 1
        limit = self.cleaned_data.get("limit") or DEFAULT_LOG_PAGE_SIZE
        return page, limit


class TimeZoneForm(ExpectedInputMixin, forms.Form):
    """An IANA time zone name such as Europe/Berlin, one of those zoneinfo knows."""

    expected = {"tz": _("Choose a time zone from the list, e.g. Europe/Berlin.")}

    # Place names are shown as the tz database spells them: not ours to translate.
    tz = forms.ChoiceField(label=_("Time zone"), choices=get_time_zone_choices, widget=forms.Select(attrs={"translate": "no"}))
    # The logs' rows per page, carried across the change so it is not reset.
    limit = forms.TypedChoiceField(
        choices=[(size, str(size)) for size in LOG_PAGE_SIZES], coerce=int, required=False, widget=forms.HiddenInput
    )
