from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """What every change attempted: the audit trail, the top-up ledger, and how each write ended."""

    name = "ledger"
