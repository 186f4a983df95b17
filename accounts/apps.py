from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-in: reseller owners and staff, and the Client Key portal."""

    name = "accounts"

    def ready(self):
        # Connects the sign-in receiver that stamps each session with the user's epoch.
        from accounts import sessions  # noqa: F401
