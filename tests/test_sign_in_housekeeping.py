"""The periodic task that clears expired sessions and stale throttle counters."""

from datetime import datetime, timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.models import ThrottleCounter
from accounts.tasks import clear_expired_sessions

pytestmark = pytest.mark.django_db


def test_the_periodic_task_deletes_expired_sessions_and_stale_counters():
    live = SessionStore()
    live["portal_key"] = "encrypted"
    live.create()
    expired = SessionStore()
    expired.create()
    Session.objects.filter(session_key=expired.session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    ThrottleCounter.objects.create(scope="old", subject="a", window_started_at=timezone.now() - timedelta(days=2))
    ThrottleCounter.objects.create(scope="new", subject="b", window_started_at=timezone.now())

    clear_expired_sessions.call_local()

    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
    assert list(ThrottleCounter.objects.values_list("scope", flat=True)) == ["new"]


def test_the_task_is_scheduled_on_the_consumer_every_quarter_hour():
    from huey.contrib.djhuey import HUEY

    due = HUEY.read_periodic(datetime(2026, 1, 1, 12, 15))
    assert any(task.name.endswith("clear_expired_sessions") for task in due)
