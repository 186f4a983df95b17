"""The query string of the Refresh control's polling (query strings go through a form, as everywhere)."""

from django import forms

# How many times the page asks whether the worker has refreshed (every POLL_SECONDS) before it stops asking.
MAX_POLLS = 30


class RefreshPollForm(forms.Form):
    """``since``: the snapshot time the page showed when Refresh was pressed; ``tries``: polls made so far."""

    since = forms.DateTimeField(required=False)
    tries = forms.IntegerField(required=False, min_value=0, max_value=MAX_POLLS)
