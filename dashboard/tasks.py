"""The console's background work, run by the Huey consumer (`manage.py run_huey`), never by a web process."""

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from dashboard import keywrites
from derouter.client import DerouterError

logger = logging.getLogger(__name__)


@db_periodic_task(crontab(minute="*"))
def settle_unsettled_writes():
    """Every minute: settle pending and unknown key writes and top-ups from derouter's key list.

    With nothing unsettled it asks derouter nothing; when derouter cannot answer,
    the next minute's run tries again.
    """
    try:
        settled = keywrites.resolve_unsettled_writes()
    except DerouterError as error:
        logger.warning("settling unsettled writes: derouter unavailable (%s)", type(error).__name__)
        return
    if settled:
        logger.info("settled %d unsettled writes", len(settled))
