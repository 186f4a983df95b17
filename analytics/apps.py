from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """The reseller's business at a glance: figures, margins, forecasts and statements from the mirror."""

    name = "analytics"
