"""manage.py check_upstream: find out which conventions derouter follows, store them and report."""

from django.core.management.base import BaseCommand, CommandError

from derouter.models import ProbeRun
from derouter.probe import ProbeFailed, run_probe


class Command(BaseCommand):
    help = ("Probe derouter with a small probe key (at most $1 of budget, all returned): which units amounts "
            "are in, when a markup is kept, whether rate limits and reclaim work, how writes answer. Stores "
            "the conventions for the console and prints a report with the evidence and the balance before "
            "and after. Run it once when pointing the dashboard at a derouter account.")

    def handle(self, *args, **options):
        self.stdout.write("Probing derouter (each step is recorded):")
        try:
            run = run_probe(say=self.stdout.write)
        except ProbeFailed as failure:
            raise CommandError(f"{failure}\n{_left_over_of_last_run()}") from failure
        self.stdout.write("")
        self.stdout.write(run.report)
        self.stdout.write(self.style.SUCCESS("Conventions stored: the console now follows them."))


def _left_over_of_last_run():
    run = ProbeRun.objects.first()
    return (run.left_over or "Nothing is left at derouter: the probe key was deleted (or never made).") if run else ""
