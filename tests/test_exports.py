"""Long CSV exports (portal usage logs, the console ledger): written to a file by the worker, for their owner only."""

import csv
import io
import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ledger.models import Outcome, TopUp

from derouter import client as derouter_client
from exports.models import Export
from exports.tasks import delete_expired_exports
from mirror import sync
from work import leases
from mirror.models import SyncState, UsageRecord
from portal import usage_export
from portal.usage_csv import CSV_HEADER

pytestmark = pytest.mark.django_db

CSV_URL = "/portal/logs/export.csv"
ROWS = 7


@pytest.fixture
def export_settings(settings, tmp_path):
    """Exports of more than 3 rows go to the worker (run in the caller in tests), files under tmp_path."""
    settings.EXPORT_STREAM_MAX_ROWS = 3
    settings.EXPORT_DIR = tmp_path / "exports"
    return settings


@pytest.fixture
def busy_key(make_key, simulator):
    created = make_key("1", label="Export Co")
    simulator.add_usage(created.id, "0.001", count=ROWS, inputTokens=10)
    yield created
    derouter_client.delete_sub_key(created.id)


def signed_in(key):
    browser = Client()
    response = browser.post("/portal/login/", {"client_key": key.secret.reveal()})
    assert response.status_code == 302
    return browser


def test_a_long_export_is_written_by_the_worker_and_downloaded_from_its_progress_page(export_settings, busy_key):
    portal = signed_in(busy_key)

    response = portal.get(CSV_URL)

    assert response.status_code == 302
    status_url = response["Location"]
    page = portal.get(status_url).content.decode()
    assert f"Your file is ready: {ROWS} rows." in page
    export = Export.objects.get()
    download = portal.get(f"/portal/exports/{export.token}/download/")
    assert download["Content-Disposition"].startswith('attachment; filename="usage-')
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert rows[0] == list(CSV_HEADER) and len(rows) == ROWS + 1
    expected = derouter_client.get_client_usage_logs(busy_key.secret.reveal(), page=1, limit=100).logs
    assert [row[1] for row in rows[1:]] == [log.request_id for log in expected]


def test_the_progress_fragment_polls_while_the_export_is_under_way(export_settings, busy_key):
    portal = signed_in(busy_key)
    portal.get("/portal/")
    export = Export.objects.create(session_key=portal.session.session_key, filename="x.csv",
                                   status=Export.Status.RUNNING, rows_done=40, rows_total=100)

    fragment = portal.get(f"/portal/exports/{export.token}/", HTTP_HX_REQUEST="true").content.decode()

    assert fragment.lstrip().startswith('<section id="export"')
    assert 'data-hx-trigger="every 1s"' in fragment
    assert '<progress id="export-progress" class="usage" max="100" value="40">' in fragment
    assert "Check again" in fragment  # without JavaScript, a link does the polling


def test_another_session_cannot_see_or_download_an_export(export_settings, busy_key):
    owner = signed_in(busy_key)
    owner.get(CSV_URL)
    export = Export.objects.get()
    stranger = signed_in(busy_key)  # even with the same key: a different session
    assert stranger.get(f"/portal/exports/{export.token}/").status_code == 404
    assert stranger.get(f"/portal/exports/{export.token}/download/").status_code == 404


def test_a_failed_export_says_so_and_leaves_no_file(export_settings, busy_key, simulator):
    portal = signed_in(busy_key)
    # Page 1 answers (it decides the export goes to the worker), then derouter fails on every try.
    simulator.inject("slow", path="/sub-key/usage-logs", delay=0, times=1)
    simulator.inject("error", path="/sub-key/usage-logs", status=500, times=0)

    status_url = portal.get(CSV_URL)["Location"]

    export = Export.objects.get()
    assert export.status == Export.Status.FAILED
    assert "derouter stopped answering" in portal.get(status_url).content.decode()
    assert portal.get(f"/portal/exports/{export.token}/download/").status_code == 404
    assert not list(export_settings.EXPORT_DIR.glob("*"))


def test_a_second_click_while_an_export_runs_starts_no_other(export_settings, busy_key):
    portal = signed_in(busy_key)
    portal.get("/portal/")
    running = Export.objects.create(session_key=portal.session.session_key, filename="x.csv",
                                    status=Export.Status.RUNNING)
    assert portal.get(CSV_URL)["Location"] == f"/portal/exports/{running.token}/"
    assert Export.objects.count() == 1


def test_an_export_whose_worker_went_away_shows_as_failed(export_settings, busy_key):
    portal = signed_in(busy_key)
    portal.get("/portal/")
    export = Export.objects.create(session_key=portal.session.session_key, filename="x.csv",
                                   status=Export.Status.RUNNING)
    Export.objects.filter(pk=export.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert "it stopped making progress" in portal.get(f"/portal/exports/{export.token}/").content.decode()


def test_short_exports_still_stream(export_settings, busy_key):
    export_settings.EXPORT_STREAM_MAX_ROWS = 5000
    response = signed_in(busy_key).get(CSV_URL)
    assert response.status_code == 200 and response.streaming
    assert not Export.objects.exists()


def test_expired_exports_are_deleted_with_their_files(export_settings, busy_key):
    signed_in(busy_key).get(CSV_URL)
    export = Export.objects.get()
    assert export.path.exists()
    assert delete_expired_exports(now=timezone.now() + timedelta(seconds=export_settings.EXPORT_RETENTION_SECONDS - 5)) == 0
    assert delete_expired_exports(now=timezone.now() + timedelta(seconds=export_settings.EXPORT_RETENTION_SECONDS + 5)) == 1
    assert not export.path.exists() and not Export.objects.exists()


# -- the portal export from the mirror -----------------------------------------------------------

EXPORT_ZONE = "Asia/Kolkata"


def _utc_text(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def mirrored_key(make_key, simulator, sync_mirror):
    """A key with a markup, used through inference and with rows sharing seconds, its usage mirrored."""
    created = make_key("5", label="Mirror Co")
    derouter_client.update_sub_key(created.id, display_multiplier=Decimal("2.5"))
    simulator.chat(created.secret.reveal(), count=2)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    for seconds, cost, count, tokens in ((0, "0.000013", 60, 7), (0, "0.001001", 30, 3000), (-1, "0.0002", 40, 90)):
        simulator.add_usage(created.id, cost, count=count, inputTokens=tokens, outputTokens=tokens // 3,
                            createdAt=_utc_text(an_hour_ago + timedelta(seconds=seconds)))
    sync_mirror(created.id)
    yield created
    derouter_client.delete_sub_key(created.id)


@pytest.fixture
def client_log_pages(simulator):
    """A function returning how many pages of its own logs clients have asked derouter for so far."""
    simulator.inject("slow", path="/sub-key/usage-logs", delay=0, times=1000)

    def count():
        faults = requests.get(f"{simulator.base_url}/_sim/faults", timeout=5).json()["faults"]
        return sum(1000 - rule["times"] for rule in faults if rule["path"] == "/sub-key/usage-logs")

    return count


def _export(portal):
    portal.get(CSV_URL)
    export = Export.objects.order_by("-id").first()
    assert export.status == Export.Status.DONE, export.error
    return export.path.read_bytes()


def test_an_export_from_the_mirror_is_byte_for_byte_the_file_paging_derouter_writes(
    export_settings, mirrored_key, simulator, client_log_pages
):
    # Rows arrive after the last sync: some in the very second of the newest row mirrored.
    newest_held = SyncState.objects.get(scope=mirrored_key.id).newest_created_at
    simulator.add_usage(mirrored_key.id, "0.000013", count=3, inputTokens=5, createdAt=_utc_text(newest_held))
    simulator.chat(mirrored_key.secret.reveal())
    portal = signed_in(mirrored_key)
    portal.post("/portal/timezone/", {"tz": EXPORT_ZONE})

    before = client_log_pages()
    from_mirror = _export(portal)
    # The portal's first page and the check of the caught-up mirror: not a page more.
    assert client_log_pages() - before == 2
    SyncState.objects.filter(scope=mirrored_key.id).update(ids_in_upstream_order=False)
    before = client_log_pages()
    from_derouter = _export(portal)
    assert client_log_pages() - before == 3  # the portal's first page, then both pages again

    assert from_mirror == from_derouter
    rows = list(csv.reader(io.StringIO(from_mirror.decode())))
    expected = derouter_client.get_client_usage_logs(mirrored_key.secret.reveal(), page=1, limit=100).logs
    assert len(rows) == 1 + 136 and rows[1][1] == expected[0].request_id
    # Cost times 2.5, half-up to six places, written as derouter writes it.
    assert {row[7] for row in rows[1:]} >= {"0.000033", "0.002503", "0.0005"}
    assert all(row[0].endswith("+05:30") for row in rows[1:])


def test_an_export_pages_derouter_while_the_keys_first_sync_is_under_way(
    export_settings, mirrored_key, simulator, client_log_pages
):
    SyncState.objects.filter(scope=mirrored_key.id).update(backfill_complete=False, backfill_page=2)
    simulator.add_usage(mirrored_key.id, "0.0002", count=2)
    mirrored = UsageRecord.objects.count()
    portal = signed_in(mirrored_key)

    before = client_log_pages()
    rows = list(csv.reader(io.StringIO(_export(portal).decode())))

    assert client_log_pages() - before == 3 and UsageRecord.objects.count() == mirrored  # no catch-up ran
    logs = []
    for page in (1, 2):
        logs += derouter_client.get_client_usage_logs(mirrored_key.secret.reveal(), page=page, limit=100).logs
    assert [row[1] for row in rows[1:]] == [log.request_id for log in logs] and len(logs) == 134


def test_an_export_pages_derouter_when_the_keys_sync_is_busy_elsewhere(
    export_settings, mirrored_key, client_log_pages, monkeypatch
):
    monkeypatch.setattr(usage_export, "MIRROR_WAIT_SECONDS", 0)
    portal = signed_in(mirrored_key)

    before = client_log_pages()
    with leases.held(sync.usage_lease_name(mirrored_key.id)):
        rows = list(csv.reader(io.StringIO(_export(portal).decode())))

    assert client_log_pages() - before == 3 and len(rows) == 1 + 132


def test_an_export_pages_derouter_when_the_multiplier_changed_since_the_snapshot(
    export_settings, mirrored_key, client_log_pages
):
    derouter_client.update_sub_key(mirrored_key.id, display_multiplier=Decimal("3"))
    portal = signed_in(mirrored_key)

    before = client_log_pages()
    rows = list(csv.reader(io.StringIO(_export(portal).decode())))

    assert client_log_pages() - before == 4  # the portal's first page, the check, then derouter's pages
    assert {row[7] for row in rows[1:]} >= {"0.000039", "0.003003", "0.0006"}


# -- the console's top-up ledger ----------------------------------------------------------------


def make_topups(count, sub_key_id="k1", outcome=Outcome.OK):
    TopUp.objects.bulk_create(
        TopUp(token=uuid.uuid4(), actor_name="olivia", sub_key_id=sub_key_id, key_label="=cmd|' /C calc'!A0",
              amount=Decimal("1.5"), outcome=outcome)
        for _ in range(count)
    )


def test_a_long_ledger_export_is_written_by_the_worker_filtered_as_asked(export_settings, owner_client):
    make_topups(4)
    make_topups(2, sub_key_id="k2")
    make_topups(1, outcome=Outcome.REFUSED)

    response = owner_client.get(reverse("console:ledger_csv"), {"outcome": "ok"})

    assert response.status_code == 302
    assert "Your file is ready: 6 rows." in owner_client.get(response["Location"]).content.decode()
    export = Export.objects.get()
    download = owner_client.get(reverse("console:export_download", args=[export.token]))
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(rows) == 7 and {row[7] for row in rows[1:]} == {"ok"}
    assert rows[1][2].startswith("'=")  # formula-safe, as the streamed download


def test_another_console_user_cannot_see_a_ledger_export(export_settings, owner_client, staff):
    make_topups(5)
    owner_client.get(reverse("console:ledger_csv"))
    export = Export.objects.get()
    owner_client.force_login(staff)
    assert owner_client.get(reverse("console:export_status", args=[export.token])).status_code == 404
    assert owner_client.get(reverse("console:export_download", args=[export.token])).status_code == 404


def test_a_short_ledger_export_still_streams(export_settings, owner_client):
    make_topups(2)
    response = owner_client.get(reverse("console:ledger_csv"))
    assert response.status_code == 200 and response.streaming
