from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-in: reseller owners and staff, and the Client Key portal."""

    name = "accounts"
