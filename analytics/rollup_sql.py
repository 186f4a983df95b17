"""The sums of the mirror's daily rollups that the figures read: plain SQL, built once per process.

Built by the ORM, each of these grouped sums took Django longer to build and to read back
than the database took to run it, on every analytics page and overview (a millisecond and
a half of a page's own time at 50 keys). The statements are the same on SQLite and
PostgreSQL; lib.sql reads their answers alike. Every statement sums the same five
columns (SUMMED); a key filter is either one key or every Client Key (the Account Key's
own use, rollups without a key, is left out of client figures).
"""

import functools
from typing import NamedTuple

from django.db import connection

from lib.sql import decimal_sum, placeholders, to_date, to_moment
from mirror.models import BILLED_PLACES, COST_PLACES, DailyRollup, KeySnapshot

SUMMED = "SUM(r.requests), SUM(r.input_tokens), SUM(r.output_tokens), SUM(r.cost), SUM(r.billed)"
# The client table's sort columns (as the page names them) and what they sort by, in SQL.
CLIENT_ORDER_BY = {
    "label": "k.label",
    "requests": "total_requests",
    "tokens": "total_tokens",
    "spend": "total_spend",
    "billed": "total_billed",
    "margin": "total_margin",
}


class Sums(NamedTuple):
    """The five sums of some rollups, read as the fields they sum: money to its column's places."""

    requests: int
    input_tokens: int
    output_tokens: int
    spend: object
    billed: object

    @classmethod
    def read(cls, requests, input_tokens, output_tokens, spend, billed):
        # PostgreSQL sums bigints as numeric.
        return cls(
            int(requests or 0), int(input_tokens or 0), int(output_tokens or 0),
            decimal_sum(spend, COST_PLACES), decimal_sum(billed, BILLED_PLACES),
        )


class ClientRow(NamedTuple):
    key: KeySnapshot
    sums: Sums


@functools.cache
def _tables():
    return (
        connection.ops.quote_name(DailyRollup._meta.db_table),
        connection.ops.quote_name(KeySnapshot._meta.db_table),
    )


@functools.cache
def _statement(kind, one_key=False, sort=None):
    """The statement of ``kind`` (totals, days, days_by_owner, models, clients, client_count), built once.

    Its parameters: the first and last day, then the key's id when ``one_key``; a sorted
    client page (``sort``, "-" for descending) takes its size and offset last.
    """
    rollups, keys = _tables()
    where = "r.day >= %s AND r.day <= %s AND " + ("r.key_id = %s" if one_key else "r.key_id IS NOT NULL")
    if kind == "totals":
        return f"SELECT {SUMMED} FROM {rollups} r WHERE {where}"
    if kind == "days":
        return f"SELECT r.day, {SUMMED} FROM {rollups} r WHERE {where} GROUP BY r.day"
    if kind == "days_by_owner":
        # Every rollup of the days, the Account Key's own (no key) apart.
        return f"SELECT r.day, r.key_id IS NULL, {SUMMED} FROM {rollups} r WHERE r.day >= %s AND r.day <= %s GROUP BY 1, 2"
    if kind == "models":
        return f"SELECT r.model, {SUMMED} FROM {rollups} r WHERE {where} GROUP BY r.model"
    if kind == "client_count":
        return f"SELECT COUNT(DISTINCT r.key_id) FROM {rollups} r WHERE {where}"
    column = CLIENT_ORDER_BY[sort.removeprefix("-")]
    direction = "DESC" if sort.startswith("-") else "ASC"
    return (
        f"SELECT k.id, k.sub_key_id, k.label, k.key_id_short, k.deleted_at, SUM(r.requests) AS total_requests,"
        " SUM(r.input_tokens), SUM(r.output_tokens), SUM(r.cost) AS total_spend, SUM(r.billed) AS total_billed,"
        " SUM(r.input_tokens) + SUM(r.output_tokens) AS total_tokens, SUM(r.billed) - SUM(r.cost) AS total_margin"
        f" FROM {rollups} r JOIN {keys} k ON k.id = r.key_id WHERE {where}"
        " GROUP BY k.id, k.sub_key_id, k.label, k.key_id_short, k.deleted_at"
        f" ORDER BY {column} {direction} NULLS LAST, k.id LIMIT %s OFFSET %s"
    )


def _rows(statement, parameters):
    with connection.cursor() as cursor:
        cursor.execute(statement, parameters)
        return cursor.fetchall()


def _parameters(start, end, key):
    adapt = connection.ops.adapt_datefield_value
    parameters = [adapt(start), adapt(end)]
    if key is not None:
        parameters.append(key.pk)
    return parameters


def totals(start, end, key=None):
    """Sums of the Client Keys' rollups (or one key's) from ``start`` to ``end``, days included."""
    (row,) = _rows(_statement("totals", key is not None), _parameters(start, end, key))
    return Sums.read(*row)


def by_day(start, end, key=None):
    """{day: Sums} of the days with use, Client Keys' (or one key's)."""
    return {
        to_date(day): Sums.read(*sums)
        for day, *sums in _rows(_statement("days", key is not None), _parameters(start, end, key))
    }


def by_day_and_owner(start, end):
    """{day: Sums} of the Client Keys, and the same of the Account Key's own use, for the days with use."""
    clients, own = {}, {}
    for day, is_own, *sums in _rows(_statement("days_by_owner"), _parameters(start, end, None)):
        (own if is_own else clients)[to_date(day)] = Sums.read(*sums)
    return clients, own


def by_model(start, end, key=None):
    """[(model as derouter logged it, Sums)] of the Client Keys' rollups (or one key's)."""
    return [(model, Sums.read(*sums)) for model, *sums in _rows(_statement("models", key is not None), _parameters(start, end, key))]


@functools.lru_cache(maxsize=64)
def _spend_by_key_statement(keys):
    """The real spend of ``keys`` keys (their ids last), a row per key that spent: built once per number of keys."""
    rollups, _ = _tables()
    return (
        f"SELECT r.key_id, SUM(r.cost) FROM {rollups} r"
        f" WHERE r.day >= %s AND r.day <= %s AND r.key_id IN ({placeholders(keys)}) GROUP BY r.key_id"
    )


def spend_by_key(start, end, key_pks):
    """{key snapshot pk: real spend from ``start`` to ``end``} of those of the keys that have rollups then."""
    if not key_pks:
        return {}
    rows = _rows(_spend_by_key_statement(len(key_pks)), [*_parameters(start, end, None), *key_pks])
    return {pk: decimal_sum(spend, COST_PLACES) for pk, spend in rows}


class ClientSums:
    """The Client Keys' sums over the days, a row per key, sorted in SQL: a paginator's list.

    Sliced, it reads that page of rows only (ClientRow: what the client table shows of the
    key, and its sums); ``count()`` counts the keys.
    """

    def __init__(self, start, end, sort):
        self._parameters = _parameters(start, end, None)
        self._sort = sort

    def count(self):
        ((count,),) = _rows(_statement("client_count"), self._parameters)
        return count

    def __getitem__(self, window):
        if not isinstance(window, slice) or window.step is not None or window.stop is None:
            raise TypeError("ClientSums reads a page: slice it as rows[start:stop]")
        start = window.start or 0
        size = max(window.stop - start, 0)
        rows = _rows(_statement("clients", sort=self._sort), [*self._parameters, size, start])
        return [
            ClientRow(
                KeySnapshot(pk=pk, sub_key_id=sub_key_id, label=label, key_id_short=short, deleted_at=to_moment(deleted_at)),
                Sums.read(requests, input_tokens, output_tokens, spend, billed),
            )
            for pk, sub_key_id, label, short, deleted_at, requests, input_tokens, output_tokens, spend, billed, _, _ in rows
        ]
