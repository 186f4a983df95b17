"""Removing exports past their retention, files and all, on the Huey worker."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from exports.models import Export

logger = logging.getLogger(__name__)


def delete_expired_exports(now=None):
    """Delete every export older than EXPORT_RETENTION_SECONDS and its file; return how many."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.EXPORT_RETENTION_SECONDS)
    expired = list(Export.objects.filter(created_at__lt=cutoff))
    for export in expired:
        export.path.unlink(missing_ok=True)
        export.path.with_suffix(".part").unlink(missing_ok=True)
    Export.objects.filter(pk__in=[export.pk for export in expired]).delete()
    if expired:
        logger.info("deleted %d expired exports", len(expired))
    return len(expired)


@db_periodic_task(crontab(minute="*/10"))
def delete_expired_exports_periodically():
    delete_expired_exports()
