from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Money in: redemption codes and card payments"

    def ready(self):
        # Money in joins the console's reconciliation and analytics, which sit below it and cannot import it.
        from analytics import figures as analytics_figures
        from dashboard import reconcile as console_reconcile
        from payments import figures, reconcile

        console_reconcile.register_further_check(reconcile.MONEY_IN_CHECK)
        analytics_figures.register_period_panel(figures.money_in_panel)
