from django.apps import AppConfig


class LibConfig(AppConfig):
    """Helpers shared by the console and the portal; an app only so its template tags load."""

    name = "lib"
