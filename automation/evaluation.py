"""One pass over every rule: read derouter once, refresh the key snapshot, act on what changed.

Safe to run on two workers at once: every rule claims its crossing or period with a
conditional update and every money move carries a deterministic token. When derouter
is down the pass fails before any rule acts and the next pass tries again; a failure of
one rule is recorded on it and does not stop the others.
"""

from django.utils import timezone
from django.utils.translation import gettext_noop

from automation import alerts, budget_requests, expiry, funding, notify, rotation, webhooks
from automation.models import Alert, AlertRule, Allowance, AutoTopUpRule
from automation.upstream import get_daily_burn
from derouter import client
from derouter.client import DerouterError
from ledger.models import UNSETTLED_OUTCOMES, TopUp
from lib.stored_text import lines, note
from mirror import snapshot as mirror_snapshot
from mirror import sync as mirror_sync
from mirror.models import KeySnapshot
from work.runs import tracked

# How long a pass waits for a snapshot refresh running on another consumer before reading the snapshot as it is.
SNAPSHOT_WAIT_SECONDS = 5


def evaluate_all(now=None, renew=None):
    """Settle unknown top-ups, then run every enabled rule once; return what was done, and failures.

    ``renew`` is called before every rule (the pass's lease; it raises when the lease was lost).
    """
    now = now or timezone.now()
    balance = client.get_balance()
    listed_at = timezone.now()
    live_keys = client.list_sub_keys()
    live_by_id = {sub_key.id: sub_key for sub_key in live_keys}
    try:
        mirror_snapshot.refresh_snapshot(live_keys, listed_at, wait_seconds=SNAPSHOT_WAIT_SECONDS)
    except mirror_sync.ScopeBusy:
        # Another consumer is writing a key list as fresh as this one into the snapshot.
        pass
    snapshots = KeySnapshot.objects.active().in_bulk(field_name="sub_key_id")
    daily_burn = get_daily_burn()
    done, failed = [], []
    unsettled = set(
        TopUp.objects.filter(outcome__in=UNSETTLED_OUTCOMES).values_list("sub_key_id", flat=True)
    )
    for sub_key in live_keys:
        if sub_key.id in unsettled:
            still = funding.settle_earlier_topups(sub_key.id)
            if still:
                done.append(note(gettext_noop("key %(key)s: %(what)s"), key=sub_key.label or sub_key.key_id, what=still))

    if budget_requests.settle_open():
        done.append(note(gettext_noop("budget requests: approvals moved on from their settled top-ups")))
    try:
        done += rotation.settle_open()
    except DerouterError as error:
        failed.append(note(gettext_noop("rotations: %(error)s"), error=error.message))

    def attempt(what, function, *args):
        if renew:
            renew()
        try:
            outcome = function(*args)
        except DerouterError as error:
            failed.append(note(gettext_noop("%(what)s: %(error)s"), what=what, error=error.message))
            return
        if outcome:
            done.append(note(gettext_noop("%(what)s: %(outcome)s"), what=what, outcome=outcome.message if isinstance(outcome, Alert) else outcome))

    for rule in AlertRule.objects.filter(enabled=True):
        attempt(note(gettext_noop("alert %(name)s"), name=rule.name), alerts.evaluate_alert, rule, snapshots.get(rule.sub_key_id), balance, daily_burn)
    for rule in AutoTopUpRule.objects.filter(enabled=True):
        # Armed or re-armed from derouter's figures of this pass, not from a snapshot another consumer may be refreshing.
        attempt(note(gettext_noop("auto top-up %(name)s"), name=rule.name), _auto_topup, rule, live_by_id.get(rule.sub_key_id), now)
    for allowance in Allowance.objects.filter(enabled=True):
        attempt(note(gettext_noop("allowance %(name)s"), name=allowance.key_label), funding.evaluate_allowance, allowance, now)
    for due in expiry.due_expiries(now):
        attempt(note(gettext_noop("expiry %(name)s"), name=due.key_label or due.key_id_short), expiry.evaluate_expiry, due, now)
    return done, failed


def _auto_topup(rule, live_key, now):
    message = funding.evaluate_auto_topup(rule, live_key, now)
    AutoTopUpRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now, **({"last_message": message} if message else {}))
    return message


def evaluate(renew=None):
    """One evaluation pass, tracked, then the deliveries and emails whose retry was lost; derouter down fails the run.

    ``renew`` (a lease's) is called before every rule, so a long pass keeps its lease.
    """
    with tracked("automation.evaluate") as run:
        done, failed = evaluate_all(renew=renew)
        run.detail = lines(*done, *(note(gettext_noop("FAILED %(what)s"), what=line) for line in failed)) or note(gettext_noop("Nothing to do."))
    delivery_ids, alert_ids = overdue_work()
    for delivery_id in delivery_ids:
        webhooks.deliver_webhook(delivery_id)
    for alert_id in alert_ids:
        notify.send_alert_email(alert_id)


def overdue_work(now=None):
    """Webhook deliveries and alert emails whose scheduled retry was lost: (delivery ids, alert ids)."""
    return webhooks.get_overdue_ids(now), notify.overdue_alert_ids(now)
