"""The customer's usage logs as CSV rows: one format for the streamed and the worker-written export."""

from mirror.models import billed_amount

# The upstream's largest page: exports walk the logs in steps of this size.
USAGE_PAGE_SIZE = 100
CSV_HEADER = (
    "time",
    "request_id",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "duration_ms",
)


def usage_csv_row(log, zone):
    """One usage log as a CSV row, its time in the customer's time zone."""
    return (
        log.created_at.astimezone(zone).isoformat(),
        log.request_id,
        log.model,
        log.input_tokens,
        log.output_tokens,
        log.cache_read_tokens,
        log.cache_write_tokens,
        format(log.cost, "f"),
        log.duration_ms,
    )


def mirrored_usage_csv_rows(rows, zone, multiplier):
    """Mirrored rows (mirror.reads.USAGE_EXPORT_COLUMNS) as usage_csv_row writes derouter's, one by one.

    derouter shows the client each row's real cost times the key's display multiplier now,
    rounded half-up to six places (mirror.models.billed_amount), not the billed amount kept
    when the row was mirrored under the multiplier of that day; it sends that as a plain
    number without trailing zeros (0.0092, 0), which usage_csv_row writes as read.
    """
    for request_id, created_at, model, input_tokens, output_tokens, cache_read, cache_write, cost, duration in rows:
        yield (
            created_at.astimezone(zone).isoformat(),
            request_id,
            model,
            input_tokens,
            output_tokens,
            cache_read,
            cache_write,
            format(billed_amount(cost, multiplier).normalize(), "f"),
            duration,
        )
