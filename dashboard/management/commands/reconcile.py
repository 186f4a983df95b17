"""Compare the ledger, the mirror and the account with derouter's figures; exit 1 on any difference."""

from django.core.management.base import BaseCommand, CommandError

from dashboard import reconcile
from derouter.client import DerouterError
from payments import reconcile as money_in


class Command(BaseCommand):
    help = (
        "Reconcile every key: the ledger's confirmed moves against derouter's budget, the mirrored usage against "
        "derouter's spend, the account's balance against the moves. Lists each difference with its amount; "
        "exits 1 when there is any."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reopen", action="store_true",
            help="Start counting again from derouter's figures now (after the differences listed were explained).",
        )
        parser.add_argument(
            "--no-catch-up", action="store_true",
            help="Compare the mirror as it stands, without bringing it up to date first.",
        )

    def handle(self, *args, reopen, no_catch_up, **options):
        try:
            record = reconcile.run(requested_by="manage.py reconcile", catch_up=not no_catch_up, reopen=reopen)
        except reconcile.RunBusy:
            raise CommandError("Another reconciliation is running; try again when it has finished.") from None
        except DerouterError as error:
            raise CommandError(f"derouter could not be read: {error.message}") from None
        report = record.report
        for note in report.notes:
            self.stdout.write(note)
        for difference in report.differences:
            self.stdout.write(difference.describe())
        # Money in, three ways: Stripe's payments and refunds, orders and codes, the ledger.
        check = money_in.check(requested_by="manage.py reconcile")
        if check.error:
            self.stdout.write(check.error)
        problems = list(check.problems.all())
        for problem in problems:
            self.stdout.write(f"Money in: {problem.get_kind_display()}: {problem.key_label or problem.sub_key_id}: "
                              f"{problem.amount_usd if problem.amount_usd is not None else ''}: {problem.detail}")
        summary = (
            f"{report.keys_checked} keys checked, {report.keys_waiting} waiting for moves to settle, "
            f"{len(report.differences)} differences; {check.payments_checked} card payments read from Stripe, "
            f"{len(problems)} money-in problems."
        )
        if report.differences or problems:
            self.stderr.write(summary)
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(summary))
