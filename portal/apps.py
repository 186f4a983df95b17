from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customers' portal: sign in with a Client Key, see its own balance, usage and logs."""

    name = "portal"
