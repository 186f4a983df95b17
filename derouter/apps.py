from django.apps import AppConfig


class DerouterConfig(AppConfig):
    """The upstream boundary: the HTTP client and the simulated derouter."""

    name = "derouter"
