"""Automation's schedule: the periodic evaluation. The tasks it and the services queue live beside those services.

Every task is idempotent (a claim by conditional update, or a deterministic token) so a
task run twice, or on two consumers at once, does its work once; each run leaves a
work.TaskRun row for the console.
"""

import logging

from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from automation import evaluation
from work import leases

logger = logging.getLogger(__name__)

EVALUATE_LEASE = "automation-evaluate"


@db_periodic_task(crontab(minute=f"*/{settings.AUTOMATION_EVALUATE_MINUTES}"))
def evaluate_periodically():
    """Every AUTOMATION_EVALUATE_MINUTES: one evaluation at a time across all consumers, under a lease."""
    try:
        with leases.held(EVALUATE_LEASE) as lease:
            evaluation.evaluate(renew=lease.keep)
    except leases.LeaseHeld:
        logger.info("automation pass skipped: another consumer is running one")
