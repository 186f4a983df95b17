from django import forms
from django.contrib.auth.forms import AuthenticationForm


class ConsoleLoginForm(AuthenticationForm):
    """Username and password for owners and staff."""

    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))
