from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Console sign-in, roles and users: reseller owners and staff."""

    name = "accounts"
