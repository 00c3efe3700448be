"""Deep `?offset=` pages: jump to the nearest bucket edge, then walk the list index from there.

The page buckets (migration 7, assay/store/buckets.py) count the rows of a namespace, and of each status,
type and queue in it, per created_at bucket. Read in the same snapshot as the page, their sums say exactly
how many rows of the filter are newer than each bucket edge, so the page at `offset` is found by skipping
from the edge nearest to it (newest-first from an edge above the page, oldest-first from one below),
never more than half a fine bucket of rows; both ends of the list are edges too. The result is the page
the plain `ORDER BY created_at DESC, id DESC LIMIT .. OFFSET ..` gives, on both backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assay.store.base import Record
from assay.store.buckets import COARSE_SPAN, FINE_SPAN
from assay.store.sql.core import SqlBase

if TYPE_CHECKING:
    from assay.store.sql.workflows import WorkflowVerbs

#: offsets up to this walk from the newest end directly (cheaper than reading the buckets)
SHALLOW = 2000

_SUMS = (
    "SELECT bucket, SUM(n) FROM {table} WHERE {cond} AND span = ?{range}"
    " GROUP BY bucket HAVING SUM(n) <> 0 ORDER BY bucket DESC"
)
#: (bucket table, condition on its key columns, parameters): the buckets that count a filter's rows
Counts = tuple[str, str, list[Any]]
#: (SELECT of the ids with a WHERE, parameters, created_at column, id column): the rows of the filter, whose
#: (created_at, id) index it walks
Walk = tuple[str, list[Any], str, str]


def bucket_filter(
    status: Any, workflow_type: str | None, task_queue: str | None, others: tuple[Any, ...]
) -> tuple[str, str] | None:
    """(dim, val) of the page buckets that count exactly the rows a list filter selects (besides its
    namespace and search attributes), or None."""
    if any(v is not None for v in others) or not (status is None or isinstance(status, str)):
        return None
    given = [(d, v) for d, v in (("s", status), ("t", workflow_type), ("q", task_queue)) if v is not None]
    if len(given) > 1:
        return None
    return given[0] if given else ("", "")


def _sums(tx: SqlBase, counts: Counts, span: int, lo: int | None = None) -> list[tuple[int, int]]:
    table, cond, key = counts
    rng = "" if lo is None else " AND bucket >= ? AND bucket < ?"
    params = key + [span] + ([] if lo is None else [lo, lo + (1 << (COARSE_SPAN - FINE_SPAN))])
    sql = _SUMS.format(table=table, cond=cond, range=rng)
    return [(int(b), int(n)) for b, n in tx._exec(sql, params).fetchall()]


def edges(tx: SqlBase, counts: Counts, offset: int) -> tuple[int, list[tuple[int, float | None]]]:
    """(rows of the filter, [(rows newer than the edge, the edge's created_at)]) for the edges around the
    row at `offset`: the coarse bucket holding it and the fine buckets inside that one. Edge None: an end."""
    coarse = _sums(tx, counts, COARSE_SPAN)
    total = sum(n for _, n in coarse)
    out: list[tuple[int, float | None]] = [(0, None)]
    newer = 0
    for b, n in coarse:
        if newer + n <= offset:
            newer += n
            continue
        # coarse bucket b holds the row at `offset`; only edges k * width with k >= 1 split rows exactly
        if b + 1 >= 1:
            out.append((newer, float((b + 1) << COARSE_SPAN)))
        if b >= 1:
            out.append((newer + n, float(b << COARSE_SPAN)))
        if b >= 0:
            for fb, fn in _sums(tx, counts, FINE_SPAN, b << (COARSE_SPAN - FINE_SPAN)):
                newer += fn
                if fb >= 1:
                    out.append((newer, float(fb << FINE_SPAN)))
        break
    return total, out


def page_by_buckets(
    tx: WorkflowVerbs, counts: Counts, walk: Walk, limit: int | None, offset: int
) -> list[Record]:
    """The newest-first page [offset, offset + limit) of the rows `walk` selects, which `counts` count."""
    total, cands = edges(tx, counts, offset)
    if offset >= total:
        return []
    end = total if limit is None else min(total, offset + limit)
    best: tuple[int, bool, float | None] | None = None  # (rows to skip, walk oldest-first, edge)
    for newer, edge in [*cands, (total, None)]:
        if newer <= offset and (edge is not None or newer == 0):
            cand = (offset - newer, False, edge)
        elif newer >= end and (edge is not None or newer == total):
            cand = (newer - end, True, edge)
        else:
            continue
        if best is None or cand[0] < best[0]:
            best = cand
    assert best is not None  # the newest end always qualifies
    skip, ascending, edge = best
    sql, p, created, ident = walk[0], list(walk[1]), walk[2], walk[3]
    if edge is not None:
        sql += f" AND {created} >= ?" if ascending else f" AND {created} < ?"
        p.append(edge)
    order = "" if ascending else " DESC"
    sql += f" ORDER BY {created}{order}, {ident}{order} LIMIT ? OFFSET ?"
    return tx._rows("workflows", tx.rows_of_page_sql(sql), [*p, end - offset, skip])
