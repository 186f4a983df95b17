from django.apps import AppConfig


class WorkConfig(AppConfig):
    """Background work: expiring leases shared by every consumer, and a record of each task run."""

    name = "work"
    verbose_name = "Background work"
