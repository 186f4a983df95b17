"""Sign-in throttling: normalised usernames, windows that hold, no overshoot, no locking the owner out."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ThrottleCounter
from accounts.throttle import Throttle, normalize_username

pytestmark = pytest.mark.django_db

WRONG = {"username": "olivia", "password": "wrong"}
RIGHT = {"username": "olivia", "password": "owner-pass-1234"}


def _code_for(device):
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def test_repeated_failures_are_throttled_even_with_the_right_password(client, owner, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    for _ in range(3):
        assert client.post("/login/", WRONG).status_code == 400
    response = client.post("/login/", RIGHT)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "spelling", ["olivia ", "\tolivia", "\u00a0olivia", "\u2009olivia", "OLIVIA", "\uff4f\uff4c\uff49\uff56\uff49\uff41"]
)
def test_other_spellings_of_a_locked_username_are_throttled_too(client, owner, settings, spelling):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    for _ in range(2):
        client.post("/login/", WRONG)
    assert client.post("/login/", {"username": spelling, "password": "wrong"}).status_code == 429
    response = client.post("/login/", {"username": spelling, "password": "owner-pass-1234"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_usernames_are_normalised_as_sign_in_compares_them():
    assert normalize_username("\u2009Olivia\n") == "olivia"
    assert normalize_username("\uff4f\uff4c\uff49\uff56\uff49\uff41") == "olivia"


def test_a_lockout_lasts_the_whole_window_not_the_cache_default(client, owner, settings, freezer_free_time):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    settings.LOGIN_ATTEMPTS_WINDOW = 3600
    for _ in range(2):
        client.post("/login/", WRONG)
    # Ten minutes on (past the database cache's 300 s default timeout) it still holds.
    freezer_free_time(minutes=10)
    response = client.post("/login/", RIGHT)
    assert response.status_code == 429
    assert 2900 < int(response["Retry-After"]) <= 3000


def test_the_window_ends_and_the_count_starts_again(client, owner, settings, freezer_free_time):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    settings.LOGIN_ATTEMPTS_WINDOW = 600
    for _ in range(2):
        client.post("/login/", WRONG)
    freezer_free_time(minutes=11)
    assert client.post("/login/", RIGHT).status_code == 302


def test_another_address_is_not_locked_out_by_guesses_for_the_same_username(client, owner, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    for _ in range(5):
        client.post("/login/", WRONG, REMOTE_ADDR="203.0.113.66")
    response = client.post("/login/", RIGHT, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 302


def test_guesses_from_many_addresses_lock_the_username_unless_it_has_a_second_factor(client, owner, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    settings.LOGIN_USERNAME_ATTEMPTS_LIMIT = 3
    for number in range(3):
        client.post("/login/", WRONG, REMOTE_ADDR=f"203.0.113.{number}")
    assert client.post("/login/", WRONG, REMOTE_ADDR="203.0.113.50").status_code == 429
    # Without a second factor even the right password waits...
    assert client.post("/login/", RIGHT, REMOTE_ADDR="198.51.100.7").status_code == 429
    # ...with one, the right password leads on to the code step, and the right code signs in.
    device = TOTPDevice.objects.create(user=owner, name="app", confirmed=True)
    response = client.post("/login/", RIGHT, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 302 and response["Location"] == "/login/code/"
    response = client.post("/login/code/", {"code": _code_for(device)}, REMOTE_ADDR="198.51.100.7")
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/audit/").status_code == 200


def test_an_address_shared_by_several_people_is_not_locked_out_by_one(client, owner, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    for _ in range(2):
        client.post("/login/", {"username": "someone-else", "password": "wrong"})
    response = client.post("/login/", RIGHT)
    assert response.status_code == 302


def test_successful_sign_ins_do_not_use_up_an_offices_address(client, owner, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 1
    for _ in range(6):
        Client().post("/login/", RIGHT)
    assert client.post("/login/", RIGHT).status_code == 302


def test_an_address_trying_many_usernames_is_throttled(client, owner, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    for number in range(8):
        client.post("/login/", {"username": f"guess-{number}", "password": "wrong"})
    response = client.post("/login/", RIGHT)
    assert response.status_code == 429


def test_counters_store_no_username_or_address(client, owner):
    client.post("/login/", WRONG, REMOTE_ADDR="203.0.113.9")
    subjects = list(ThrottleCounter.objects.values_list("subject", flat=True))
    assert subjects and not any("olivia" in subject or "203.0.113.9" in subject for subject in subjects)


@pytest.mark.django_db(transaction=True)
def test_parallel_attempts_never_pass_more_than_the_limit():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:memorydb"):
        # In-memory SQLite shares one connection's lock table; the row lock is what is tested on PostgreSQL.
        throttle = Throttle("parallel-test", 5, 900)
        passed = [not throttle.hit("one subject").is_over_limit for _ in range(40)]
        assert sum(passed) == 5
        return
    throttle = Throttle("parallel-test", 5, 900)
    passed = []
    barrier = threading.Barrier(8)

    def attempt():
        barrier.wait()
        for _ in range(5):
            passed.append(not throttle.hit("one subject").is_over_limit)
        connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passed) == 40
    assert sum(passed) == 5


@pytest.fixture
def freezer_free_time(monkeypatch):
    """Move the throttle's clock forward without a time-freezing library."""
    from django.utils import timezone

    real_now = timezone.now
    offset = timedelta()

    def advance(**delta):
        nonlocal offset
        offset += timedelta(**delta)

    monkeypatch.setattr("accounts.throttle.timezone.now", lambda: real_now() + offset)
    return advance
