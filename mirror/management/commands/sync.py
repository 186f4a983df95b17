"""python manage.py sync [--key ID] [--full] [--verify]: one sync of the mirror, in the foreground."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from derouter.client import DerouterError
from mirror import reconcile
from mirror import snapshot as mirror_snapshot
from mirror import sync
from mirror.models import ACCOUNT_SCOPE, KeySnapshot
from mirror.reads import REFRESH_TASK_NAME
from work.runs import Recorded


class Command(BaseCommand):
    help = "Refresh the key snapshot and sync usage rows now, with a progress bar on a terminal."

    def add_arguments(self, parser):
        parser.add_argument("--key", metavar="ID", help='Sync only this key (its sub-key id, or "account").')
        parser.add_argument("--full", action="store_true", help="Walk every page again, not only the new rows.")
        parser.add_argument(
            "--verify", action="store_true",
            help="Then check that every key's mirrored real cost equals its spend; exit 1 naming those that differ.",
        )

    def handle(self, *args, key=None, full=False, verify=False, **options):
        show_bar = sys.stderr.isatty() and options["verbosity"] > 0
        recorded = Recorded(REFRESH_TASK_NAME)
        try:
            snapshot = mirror_snapshot.refresh_snapshot()
        except sync.ScopeBusy:
            recorded.skipped()
            raise CommandError("Another process is refreshing the key snapshot; try again in a moment.") from None
        except DerouterError as error:
            recorded.failed(error.message)
            raise CommandError(f"derouter failed while listing keys: {error.message}") from None
        recorded.ok(snapshot.describe())
        self.stdout.write(f"Key snapshot: {snapshot.describe()}.")
        if key and key != ACCOUNT_SCOPE and not KeySnapshot.objects.filter(sub_key_id=key).exists():
            raise CommandError(f"No key with id {key} in the snapshot.")
        scopes = [key] if key else [
            *KeySnapshot.objects.active().order_by("label", "sub_key_id").values_list("sub_key_id", flat=True),
            ACCOUNT_SCOPE,
        ]
        inserted = 0
        failures = []
        for scope in scopes:
            try:
                result = self._sync(scope, full, show_bar)
            except sync.ScopeBusy:
                failures.append(f"{scope}: another process is syncing it")
                continue
            except DerouterError as error:
                failures.append(f"{scope}: derouter failed ({error.message}); pages synced so far are kept")
                continue
            inserted += result.inserted
            if result.inserted or result.malformed or options["verbosity"] > 1:
                self.stdout.write(result.describe())
        self.stdout.write(f"Usage: {inserted} new rows over {len(scopes)} scopes.")
        if failures:
            raise CommandError("Not synced: " + "; ".join(failures))
        if verify:
            self._verify(KeySnapshot.objects.filter(sub_key_id=key) if key else None)

    def _sync(self, scope, full, show_bar):
        label = scope if scope == ACCOUNT_SCOPE else KeySnapshot.objects.get(sub_key_id=scope).label or scope
        with tqdm(desc=label[:30], unit="page", disable=not show_bar, leave=False, file=sys.stderr) as bar:

            def progress(result, usage_page):
                bar.total = max(usage_page.pages, bar.n + 1)
                bar.update(1)
                bar.set_postfix(new=result.inserted)

            return sync.sync_scope(scope, full=full, progress=progress, ask_ahead=True)

    def _verify(self, snapshots):
        disagreeing = reconcile.disagreements(snapshots)
        if not disagreeing:
            self.stdout.write("Verified: every key's mirrored real cost equals its spend.")
            return
        lines = [f"{snapshot} {reconcile.difference_text(snapshot, mirrored)}" for snapshot, mirrored in disagreeing]
        raise CommandError("Mirrored cost differs from spend for: " + "; ".join(lines))
