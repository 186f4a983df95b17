"""The worker's side of automation: the periodic evaluation and the deliveries it queues.

Every task is idempotent (a claim by conditional update, or a deterministic token) so a
task run twice, or on two consumers at once, does its work once; each run leaves a
mirror.TaskRun row for the console.
"""

import logging

from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from automation import evaluation, notify, webhooks
from mirror import leases
from mirror.runs import tracked

logger = logging.getLogger(__name__)

EVALUATE_LEASE = "automation-evaluate"
# A customer email that fails (SMTP down) is retried after 60 s, 120 s, 240 s.
EMAIL_RETRIES = 3
EMAIL_RETRY_DELAY = 60
EMAIL_RETRY_BACKOFF = 2


@db_periodic_task(crontab(minute=f"*/{settings.AUTOMATION_EVALUATE_MINUTES}"))
def evaluate_periodically():
    """Every AUTOMATION_EVALUATE_MINUTES: one evaluation at a time across all consumers, under a lease."""
    try:
        with leases.held(EVALUATE_LEASE) as lease:
            evaluate(renew=lease.keep)
    except leases.LeaseHeld:
        logger.info("automation pass skipped: another consumer is running one")


def evaluate(renew=None):
    """One evaluation pass, tracked; derouter down fails the run and the next one tries again.

    ``renew`` (a lease's) is called before every rule, so a long pass keeps its lease.
    """
    with tracked("automation.evaluate") as run:
        done, failed = evaluation.evaluate_all(renew=renew)
        run.detail = "\n".join(done + [f"FAILED {line}" for line in failed])[:5000] or "Nothing to do."
    delivery_ids, alert_ids = evaluation.overdue_work()
    for delivery_id in delivery_ids:
        deliver_webhook(delivery_id)
    for alert_id in alert_ids:
        send_alert_email(alert_id)


@db_task()
def deliver_webhook(delivery_id):
    """Send one webhook delivery; on failure schedule the next attempt with exponential backoff."""
    with tracked("automation.deliver_webhook") as run:
        delay = webhooks.attempt_delivery(delivery_id)
        run.detail = f"delivery {delivery_id}" + (f": retry in {delay} s" if delay else "")
    if delay:
        deliver_webhook.schedule((delivery_id,), delay=delay)


@db_task()
def send_alert_email(alert_id):
    with tracked("automation.send_alert_email") as run:
        delay = notify.send_alert_email(alert_id)
        run.detail = f"alert {alert_id}" + (f": retry in {delay} s" if delay else "")
    if delay:
        send_alert_email.schedule((alert_id,), delay=delay)


@db_task(retries=EMAIL_RETRIES, retry_delay=EMAIL_RETRY_DELAY, retry_backoff=EMAIL_RETRY_BACKOFF)
def send_customer_email(subject, body, recipient):
    with tracked("automation.send_customer_email") as run:
        notify.send_customer_email(subject, body, recipient)
        run.detail = subject[:200]
