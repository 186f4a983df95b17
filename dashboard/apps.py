from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The reseller console: Client Keys, top-ups, usage logs and the audit trail."""

    name = "dashboard"
