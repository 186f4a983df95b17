"""The customer's usage logs as CSV rows: one format for the streamed and the worker-written export."""

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
