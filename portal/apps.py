from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customers' portal: sign in with a Client Key, see its own balance, usage and logs."""

    name = "portal"

    def ready(self):
        # The usage export's task lives beside its service: load it so the worker knows it.
        from portal import usage_export  # noqa: F401
