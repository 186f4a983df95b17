from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The reseller console: Client Keys, top-ups, usage logs and the audit trail."""

    name = "dashboard"

    def ready(self):
        # The ledger export's task lives beside its service: load it so the worker knows it.
        from dashboard import ledger_csv  # noqa: F401
