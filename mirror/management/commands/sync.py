"""python manage.py sync [--key ID] [--full] [--verify]: one sync of the mirror, in the foreground.

Another process (the worker, a second `sync`) may be syncing some scopes at the same time:
that is not a failure. Their scopes are waited for (at most BUSY_WAIT_SECONDS) and, if
still busy then, named as left to that process; only derouter failing is a failure.
"""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from derouter.client import DerouterError
from mirror import passes, reconcile, sync
from mirror import snapshot as mirror_snapshot
from mirror.models import ACCOUNT_SCOPE, KeySnapshot
from mirror.snapshot import REFRESH_TASK_NAME
from work.runs import Recorded

# How long the command waits for another process's refresh of the snapshot, or for scopes it is syncing.
BUSY_WAIT_SECONDS = 60


class Command(BaseCommand):
    help = "Refresh the key snapshot and sync usage rows now, with a progress bar on a terminal."

    def add_arguments(self, parser):
        parser.add_argument("--key", metavar="ID", help='Sync only this key (its sub-key id, or "account").')
        parser.add_argument("--full", action="store_true", help="Walk every page again, not only the new rows.")
        parser.add_argument(
            "--verify", action="store_true",
            help="Report every key whose mirror was missing rows it claimed to hold (before this sync mends it),"
                 " then check that every key's mirrored real cost equals its spend; exit 1 naming those that differ.",
        )

    def handle(self, *args, key=None, full=False, verify=False, **options):
        show_bar = sys.stderr.isatty() and options["verbosity"] > 0
        self._refresh_snapshot()
        if key and key != ACCOUNT_SCOPE and not KeySnapshot.objects.filter(sub_key_id=key).exists():
            raise CommandError(f"No key with id {key} in the snapshot.")
        snapshots = KeySnapshot.objects.filter(sub_key_id=key) if key else None
        gaps = self._report_gaps(snapshots) if verify else []
        if key:
            inserted, failures, busy = self._sync_one(key, full, show_bar, options["verbosity"])
            scopes = 1
        else:
            scopes = [
                *KeySnapshot.objects.active().order_by("label", "sub_key_id").values_list("sub_key_id", flat=True),
                ACCOUNT_SCOPE,
            ]
            inserted, failures, busy = self._sync_all(scopes, full, show_bar, options["verbosity"])
            scopes = len(scopes)
        self.stdout.write(f"Usage: {inserted} new rows over {scopes} scopes.")
        if busy:
            self.stdout.write(
                f"Left to the process syncing them (still busy after {BUSY_WAIT_SECONDS} s): {', '.join(busy)}."
            )
        if failures:
            raise CommandError("Not synced: " + "; ".join(failures))
        if verify:
            self._verify(snapshots, gaps)

    def _refresh_snapshot(self):
        recorded = Recorded(REFRESH_TASK_NAME)
        try:
            snapshot = mirror_snapshot.refresh_snapshot(wait_seconds=BUSY_WAIT_SECONDS)
        except sync.ScopeBusy:
            recorded.skipped()
            self.stdout.write(
                f"Another process has been refreshing the key snapshot for {BUSY_WAIT_SECONDS} s;"
                " syncing usage with the snapshot as it is."
            )
            return
        except DerouterError as error:
            recorded.failed(error.message)
            raise CommandError(f"derouter failed while listing keys: {error.message}") from None
        recorded.ok(snapshot.as_note())
        self.stdout.write(f"Key snapshot: {snapshot.describe()}.")

    def _sync_one(self, scope, full, show_bar, verbosity):
        label = scope if scope == ACCOUNT_SCOPE else KeySnapshot.objects.get(sub_key_id=scope).label or scope
        with tqdm(desc=label[:30], unit="page", disable=not show_bar, leave=False, file=sys.stderr) as bar:

            def progress(result, usage_page):
                bar.total = max(usage_page.pages, bar.n + 1)
                bar.update(1)
                bar.set_postfix(new=result.inserted)

            try:
                result = sync.sync_scope(
                    scope, full=full, progress=progress, ask_ahead=True, wait_seconds=BUSY_WAIT_SECONDS
                )
            except sync.ScopeBusy:
                return 0, [], [scope]
            except DerouterError as error:
                return 0, [f"{scope}: derouter failed ({error.message}); pages synced so far are kept"], []
        if result.inserted or result.malformed or verbosity > 1:
            self.stdout.write(result.describe())
        return result.inserted, [], []

    def _sync_all(self, scopes, full, show_bar, verbosity):
        """Every scope in one concurrent pass; scopes another process is syncing are waited for after, at once."""
        inserted, failures = 0, []
        with tqdm(total=len(scopes), desc="usage", unit="scope", disable=not show_bar, leave=False,
                  file=sys.stderr) as bar:

            def ended(scope, synced, error, busy):
                nonlocal inserted
                if error is not None:
                    failures.append(f"{scope}: derouter failed ({error}); pages synced so far are kept")
                elif synced is not None:
                    inserted += synced.inserted
                    if synced.inserted or synced.malformed or verbosity > 1:
                        self.stdout.write(synced.describe())
                if not busy:
                    bar.update(1)

            result = passes.run_pass(scopes, full=full, on_scope=ended, exclusive=False)
            busy = result.busy
            if busy:
                result = passes.run_pass(
                    busy, full=full, on_scope=ended, exclusive=False, wait_seconds=BUSY_WAIT_SECONDS
                )
                busy = result.busy
        return inserted, failures, busy

    def _report_gaps(self, snapshots):
        """Keys whose mirror says it holds every row of their spend but whose rows cost less or more: said now."""
        gaps = reconcile.gaps(snapshots)
        for snapshot, mirrored in gaps:
            self.stderr.write(
                f"Gap: {snapshot} {reconcile.difference_text(snapshot, mirrored)}, though its last sync"
                " recorded this spend as mirrored; this sync fetches what derouter still lists."
            )
        return gaps

    def _verify(self, snapshots, gaps):
        disagreeing = reconcile.disagreements(snapshots)
        problems = []
        if gaps:
            problems.append(
                "the mirror was missing rows it claimed to hold for: "
                + "; ".join(f"{snapshot} {reconcile.difference_text(snapshot, mirrored)}" for snapshot, mirrored in gaps)
                + (" (mended by this sync)" if not disagreeing else "")
            )
        if disagreeing:
            problems.append(
                "mirrored cost differs from spend for: "
                + "; ".join(f"{snapshot} {reconcile.difference_text(snapshot, mirrored)}"
                            for snapshot, mirrored in disagreeing)
            )
        if problems:
            raise CommandError("Not verified: " + "; ".join(problems))
        self.stdout.write("Verified: every key's mirrored real cost equals its spend.")
