"""A stored session as CSV (metrics, reps or cues) and as a FIT activity file, for downloads.

The CSV files hold the stored values exactly: floats in their shortest round-trip form, times
as ISO 8601 UTC, an empty field for a missing value. Free text sent by a publisher (cue texts,
reasons) that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) is
prefixed with ``'``, as OWASP advises against CSV injection. Store calls block, so the routes
are plain functions, run in FastAPI's thread pool.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import Response

from server import fit
from server.api import SessionIdPath, StoreDep, _session
from server.auth import require_coach
from server.store import MetricRow, RepRow

router = APIRouter(prefix="/api", dependencies=[Depends(require_coach)], tags=["export"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
METRIC_COLUMNS = (
    "sensor_time_s",
    "wall_time",
    "rep",
    "cadence_spm",
    "gct_ms",
    "step_count",
    "intensity_g",
    "speed_m_s",
    "samples",
    "saturated_samples",
    "gaps",
    "lost_samples",
    "activity",
    "cadence_source",
    "cadence_confidence",
    "lost_fraction",
    "clipped_fraction",
    "trusted",
)
REP_COLUMNS = (
    "rep",
    "start_s",
    "end_s",
    "duration_s",
    "mean_cadence_spm",
    "mean_gct_ms",
    "gct_drift_ms",
    "cadence_cv_pct",
    "time_to_stride_cadence_s",
    "fatigue_flag",
    "fatigue_reason",
    "missing_s",
    "complete",
    "sensor_time_s",
    "wall_time",
    "seq",
    "id",
)
CUE_COLUMNS = (
    "seq",
    "sensor_time_s",
    "wall_time",
    "kind",
    "text",
    "rep",
    "reps",
    "at_s",
    "reason",
    "id",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")

Table = Literal["metrics", "reps", "cues"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown session."}}


@router.get(
    "/sessions/{session_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "A CSV file."}, **_NOT_FOUND},
)
def export_csv(
    session_id: SessionIdPath,
    store: StoreDep,
    table: Annotated[
        Table,
        Query(
            description="metrics: one row per stored second, with the rep holding it; "
            "reps: the rep table with the fatigue flags; cues: every cue."
        ),
    ] = "metrics",
) -> Response:
    """The session's per-second metrics (or reps, or cues) as a CSV download."""
    _session(store, session_id)
    if table == "metrics":
        text = metrics_csv(store.metrics(session_id), store.reps(session_id))
    elif table == "reps":
        text = rows_csv(REP_COLUMNS, (r.model_dump() for r in store.reps(session_id)))
    else:
        text = rows_csv(CUE_COLUMNS, (c.model_dump() for c in store.cues(session_id)))
    suffix = "" if table == "metrics" else f"-{table}"
    return Response(
        text.encode(),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": attachment(session_id, suffix, "csv")},
    )


@router.get(
    "/sessions/{session_id}/export.fit",
    response_class=Response,
    responses={
        200: {"content": {fit.MEDIA_TYPE: {}}, "description": "A FIT activity file."},
        409: {"description": "Nothing to export yet (no metrics, no finished rep)."},
        **_NOT_FOUND,
    },
)
def export_fit(session_id: SessionIdPath, store: StoreDep) -> Response:
    """The session as a FIT activity: one record per second, one lap per finished rep (one lap
    for the whole session when it has none), for Garmin Connect, Strava or a training log."""
    _session(store, session_id)
    try:
        data = fit.encode_activity(session_id, store.metrics(session_id), store.reps(session_id))
    except fit.FitExportError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return Response(
        data,
        media_type=fit.MEDIA_TYPE,
        headers={"Content-Disposition": attachment(session_id, "", "fit")},
    )


def metrics_csv(metrics: Sequence[MetricRow], reps: Sequence[RepRow]) -> str:
    """One row per stored second; ``rep`` is the rep whose ``[start_s, end_s]`` holds it.

    An untrusted second keeps its cadence, with ``trusted`` false beside it: the file holds
    what was measured, and says what can be relied on.
    """
    rep_at = RepLookup(reps)
    rows = []
    for m in metrics:
        row = m.model_dump(exclude={"quality", "seconds"})
        row |= m.quality.model_dump() if m.quality is not None else {}
        rows.append(row | {"rep": rep_at(m.sensor_time_s)})
    return rows_csv(METRIC_COLUMNS, rows)


class RepLookup:
    """The rep number holding a sensor time, by bisection over the reps sorted by start."""

    def __init__(self, reps: Iterable[RepRow]) -> None:
        self._reps = sorted(reps, key=lambda r: r.start_s)
        self._starts = [r.start_s for r in self._reps]

    def __call__(self, t_s: float) -> int | None:
        i = bisect.bisect_right(self._starts, t_s) - 1
        # Reps never overlap, so only the last one starting at or before t_s can hold it.
        if i >= 0 and t_s <= self._reps[i].end_s:
            return self._reps[i].rep
        return None


def rows_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """``rows`` as CSV text (header first), each value written by :func:`cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([cell(row.get(name)) for name in columns] for row in rows)
    return out.getvalue()


def cell(value: object) -> str:
    """A CSV field: exact float text, ISO times, ``true``/``false``, neutralised formulas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    return repr(value) if isinstance(value, float) else str(value)


def attachment(session_id: str, suffix: str, extension: str) -> str:
    """A ``Content-Disposition`` naming the file after the session, in safe characters only
    (a session id is any text a publisher sent: quotes, slashes, line breaks)."""
    stem = _UNSAFE_IN_FILENAME.sub("_", session_id).strip("._") or "session"
    return f'attachment; filename="{stem}{suffix}.{extension}"'
