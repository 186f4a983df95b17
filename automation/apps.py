from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"
    verbose_name = "Automation: alerts, webhooks, automatic top-ups, expiry, rotation, budget requests"

    def ready(self):
        # Console writes become webhook events through the audit trail they already write.
        from automation import signals  # noqa: F401
