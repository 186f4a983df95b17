"""`manage.py sync`: beside another process syncing, and --verify saying what was missing before it mends it."""

import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from mirror import snapshot as mirror_snapshot
from mirror import sync
from mirror.management.commands import sync as sync_command
from mirror.models import KeySnapshot, SyncState, UsageRecord
from tests.helpers import ROOT, database_url_for_subprocesses

# Holds the leases named on its command line as another `sync` would, for as long as it is told (or until killed).
HOLD_LEASES = """
import os, sys, time
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()
from work import leases
held = [leases.held(name) for name in sys.argv[2:]]
for lease in held:
    lease.__enter__()
print("held", flush=True)
time.sleep(float(sys.argv[1]))
for lease in held:
    lease.__exit__(None, None, None)
"""


def _hold(seconds, *lease_names):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASES, str(seconds), *lease_names],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url_for_subprocesses()},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"held", holder.stderr.read().decode()[-2000:]
    return holder


@pytest.mark.django_db(transaction=True)
def test_a_sync_beside_another_process_waits_for_its_scopes_and_does_not_fail(make_key, simulator, capsys):
    busy, free = make_key(label="Busy elsewhere"), make_key(label="Free")
    simulator.add_usage(busy.id, "0.01", count=3)
    simulator.add_usage(free.id, "0.01", count=2)
    holder = _hold(2, mirror_snapshot.SNAPSHOT_LEASE, sync.usage_lease_name(busy.id))
    try:
        call_command("sync")
    finally:
        holder.wait(timeout=30)

    assert UsageRecord.objects.filter(key__sub_key_id=busy.id).count() == 3
    assert UsageRecord.objects.filter(key__sub_key_id=free.id).count() == 2
    assert "Not synced" not in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_a_scope_still_busy_after_the_wait_is_named_as_left_to_the_other_process_not_failed(
    make_key, simulator, capsys, monkeypatch
):
    monkeypatch.setattr(sync_command, "BUSY_WAIT_SECONDS", 1)
    busy = make_key(label="Busy for long")
    simulator.add_usage(busy.id, "0.01")
    holder = _hold(60, sync.usage_lease_name(busy.id))
    try:
        call_command("sync", "--key", busy.id)
        call_command("sync")
    finally:
        holder.kill()
        holder.wait()

    printed = capsys.readouterr().out
    assert printed.count(f"Left to the process syncing them (still busy after 1 s): {busy.id}") == 2


@pytest.mark.django_db
def test_verify_reports_a_gap_in_a_key_said_to_be_in_step_then_mends_it(make_key, simulator, capsys):
    key = make_key(label="Gapped client")
    simulator.add_usage(key.id, "0.01", count=3)
    mirror_snapshot.refresh_snapshot()
    sync.sync_scope(key.id)
    simulator.add_usage(key.id, "0.25", count=2)
    mirror_snapshot.refresh_snapshot()
    # What a sync that lost rows left behind: the new spend recorded as mirrored, its rows not.
    SyncState.objects.filter(scope=key.id).update(synced_spent=KeySnapshot.objects.get(sub_key_id=key.id).spent)

    with pytest.raises(CommandError, match=r"missing rows it claimed to hold for: Gapped client .*difference \+0\.5"):
        call_command("sync", "--key", key.id, "--verify")

    captured = capsys.readouterr()
    assert "Gap: Gapped client" in captured.err and "2 new rows" in captured.out
    assert UsageRecord.objects.filter(key__sub_key_id=key.id).count() == 5
    call_command("sync", "--key", key.id, "--verify")
    assert "Verified" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_two_sync_commands_at_once_both_succeed_and_mirror_every_row_once(make_key, simulator):
    keys = [make_key(label=f"Concurrent {number}") for number in range(4)]
    for key in keys:
        simulator.add_usage(key.id, "0.01", count=3)
    environment = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url_for_subprocesses(),
        "DEROUTER_API_BASE": simulator.base_url, "DEROUTER_ACCOUNT_KEY": simulator.account_key,
    }
    for _ in range(2):
        commands = [
            subprocess.Popen([sys.executable, "manage.py", "sync"], cwd=ROOT, env=environment,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for command in commands:
            out, err = command.communicate(timeout=120)
            assert command.returncode == 0, (out.decode()[-1000:], err.decode()[-2000:])
        for key in keys:
            simulator.add_usage(key.id, "0.01")

    call_command("sync")
    for key in keys:
        rows = UsageRecord.objects.filter(key__sub_key_id=key.id)
        assert rows.count() == 5 and rows.values("request_id").distinct().count() == 5
