"""Streamed CSV downloads that a spreadsheet opens as plain text."""

import csv

from django.http import StreamingHttpResponse

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell spreadsheets show as text, never run as a formula (a whole number is left a number)."""
    if type(value) is int:
        # Counts fill most cells of a large export; none can be a formula, so skip the text work.
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    """A file-like object whose write hands the line back, for streaming csv.writer output."""

    def write(self, line):
        return line


def csv_download(rows, filename):
    """A CSV attachment streamed row by row from an iterable of rows (the header first)."""
    writer = csv.writer(_Echo())
    lines = (writer.writerow([safe_cell(cell) for cell in row]).encode("utf-8") for row in rows)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
