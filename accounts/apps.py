from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Console sign-in, roles and users: reseller owners and staff."""

    name = "accounts"

    def ready(self):
        # Connects the sign-in receiver that stamps each session with the user's epoch.
        from accounts import sessions  # noqa: F401
        # Connects the sign-in receiver that restores the user's language.
        from accounts import signals  # noqa: F401
