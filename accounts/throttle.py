"""Sign-in attempt counting that holds across workers, backends and parallel bursts.

Each attempt is counted BEFORE it is checked, in a database row taken under a
lock: two parallel requests can never both see "one left", and a window lasts
exactly ``window`` seconds from its first attempt whatever cache is configured.
"""

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ThrottleCounter

# Rows whose window ended this long ago are of no use to any throttle.
STALE_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Attempt:
    """One counted attempt: how many the subject has made in its window, and whether that is too many."""

    count: int
    limit: int
    retry_after: int

    @property
    def is_over_limit(self):
        return self.count > self.limit


def _digest(subject):
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` attempts per ``window`` seconds for each subject of a scope."""

    scope: str
    limit: int
    window: int

    def hit(self, subject):
        """Count one attempt now and return it; the caller refuses it when ``is_over_limit``."""
        now = timezone.now()
        with transaction.atomic():
            counter, _ = ThrottleCounter.objects.select_for_update().get_or_create(
                scope=self.scope, subject=_digest(subject), defaults={"window_started_at": now}
            )
            if counter.window_started_at + timedelta(seconds=self.window) <= now:
                counter.window_started_at, counter.count = now, 0
            counter.count += 1
            counter.save(update_fields=["window_started_at", "count"])
        ends_at = counter.window_started_at + timedelta(seconds=self.window)
        return Attempt(counter.count, self.limit, max(1, int((ends_at - now).total_seconds()) + 1))

    def forgive(self, subject):
        """Take back one counted attempt, e.g. a sign-in that succeeded."""
        ThrottleCounter.objects.filter(scope=self.scope, subject=_digest(subject), count__gt=0).update(
            count=F("count") - 1
        )

    def reset(self, subject):
        ThrottleCounter.objects.filter(scope=self.scope, subject=_digest(subject)).delete()


def delete_stale_counters():
    """Remove counters whose windows are long over; returns how many went."""
    deleted, _ = ThrottleCounter.objects.filter(window_started_at__lt=timezone.now() - STALE_AFTER).delete()
    return deleted


def normalize_username(raw):
    """The username as sign-in compares it, so no spelling of it gets a fresh count.

    The same steps as AuthenticationForm and the user model (surrounding
    whitespace stripped, NFKC), then case-folded: a database that compares
    names without case must not give "Owner1" guesses of its own either.
    """
    name = unicodedata.normalize("NFKC", str(raw).strip())
    name = get_user_model().normalize_username(name).strip()
    return name.casefold()[:150]


def client_address(request):
    """The address the request came from (set REMOTE_ADDR correctly behind a proxy)."""
    return request.META.get("REMOTE_ADDR", "unknown")
