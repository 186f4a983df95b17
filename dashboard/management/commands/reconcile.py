"""Compare the ledger, the mirror and the account with derouter's figures; exit 1 on any difference."""

from django.core.management.base import BaseCommand, CommandError

from dashboard import reconcile
from lib.stored_text import read_in_english
from derouter.client import DerouterError


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
            self.stdout.write(read_in_english(note))
        for difference in report.differences:
            self.stdout.write(difference.describe())
        # Further checks registered by higher layers (money in: Stripe, orders and codes, the ledger).
        further_problems = 0
        for check in reconcile.FURTHER_CHECKS:
            lines, count = check.run_for_command()
            for line in lines:
                self.stdout.write(line)
            further_problems += count
        summary = (
            f"{report.keys_checked} keys checked, {report.keys_waiting} waiting for moves to settle, "
            f"{len(report.differences)} differences, {further_problems} further problems."
        )
        if report.differences or further_problems:
            self.stderr.write(summary)
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(summary))
