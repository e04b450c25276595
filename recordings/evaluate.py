"""Accuracy of the streaming engine against ground truth (`stridecue eval`).

Protocol (the same for real and simulated trials):

- A detected contact matches a true one when their initial contacts lie within 60 ms,
  one-to-one (closest pairs first).
- Left out: true "contacts" shorter than 60 ms (force-threshold glitches: no foot touches the
  ground that briefly); contacts in the trial's first 1.0 s; contacts whose toe-off lies within
  the engine's 150 ms latency bound of the recording's end (a causal detector cannot have
  confirmed them yet); contacts that a hole in the data (a reported gap) touches, from 100 ms
  before IC to 100 ms after TO (the landmarks' confirmation spans: the detector refuses a
  landmark next to a hole). A detection is left out with the true contact it matches, or,
  unmatched, by the same time rules.
- For a one-leg truth (shank, foot) only the sensor leg's detections count.
- Cadence error per trial: cadence from the median detected step interval (120 / median stride
  interval for a one-leg sensor) against the same from the truth.
- Streaming cadence error (sessions): every per-second metric outside ±3 s of a true rep
  boundary, against the same estimator applied to the true contacts that the engine's window
  saw (the true contacts matched to the detections it had used).
- Reps: a detected rep matches the true rep it overlaps most (at least half of the shorter).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsp.engine import StrideEngine
from dsp.events import Event, Gap, Metrics, Placement, RepSummary, StepEvent
from dsp.metrics import cadence_from_ics
from recordings.trials import Trial

MATCH_TOLERANCE_S = 0.060
GLITCH_S = 0.060
SKIP_START_S = 1.0
LATENCY_BOUND_S = 0.150
REP_BOUNDARY_GUARD_S = 3.0
GAP_GUARD_S = 0.100
STREAM_WINDOW_STEPS = 7


@dataclass(frozen=True, slots=True)
class ContactScore:
    """Per-trial contact accuracy. Errors are detected minus true."""

    n_contacts: int
    n_detected: int
    matched: int
    ic_errors_ms: tuple[float, ...]
    gct_errors_ms: tuple[float, ...]
    cadence_error_spm: float | None
    truth_glitches_dropped: int


@dataclass(frozen=True, slots=True)
class RepScore:
    reps_true: int
    reps_found: int
    false_reps: int
    start_errors_s: tuple[float, ...]
    end_errors_s: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class TrialResult:
    name: str
    dataset: str
    activity: str
    placement: str
    contacts: ContactScore
    stream_cadence_errors_spm: tuple[float, ...] = ()
    reps: RepScore | None = None
    events: tuple[Event, ...] = field(default=(), repr=False)


def run_trial(trial: Trial, block_s: float = 1.0) -> list[Event]:
    """Stream a trial through the engine in auto mode, in blocks of ``block_s``."""
    samples = trial.samples()
    placement = Placement.parse(trial.placement)
    engine = StrideEngine(placement, trial.sample_rate_hz)
    step = max(1, round(block_s * trial.sample_rate_hz))
    events: list[Event] = []
    for start in range(0, len(samples), step):
        events.extend(engine.process(samples.slice(start, start + step)))
    events.extend(engine.finish())
    return events


def _match(detected_ic: np.ndarray, true_ic: np.ndarray, tol_s: float) -> list[tuple[int, int]]:
    """One-to-one (true index, detected index) pairs within ``tol_s``, closest first."""
    if not len(detected_ic) or not len(true_ic):
        return []
    lo = np.searchsorted(detected_ic, true_ic - tol_s, side="left")
    hi = np.searchsorted(detected_ic, true_ic + tol_s, side="right")
    candidates = [
        (abs(detected_ic[k] - true_ic[i]), i, k)
        for i in range(len(true_ic))
        for k in range(lo[i], hi[i])
    ]
    used_t: set[int] = set()
    used_d: set[int] = set()
    pairs = []
    for _, i, k in sorted(candidates):
        if i not in used_t and k not in used_d:
            used_t.add(i)
            used_d.add(k)
            pairs.append((i, k))
    return sorted(pairs)


def _in_gaps(ic: np.ndarray, to: np.ndarray, gaps: Sequence[Gap]) -> np.ndarray:
    out = np.zeros(len(ic), dtype=bool)
    for g in gaps:
        out |= (to + GAP_GUARD_S > g.start_s) & (ic - GAP_GUARD_S < g.end_s)
    return out


def score_contacts(
    steps: Sequence[StepEvent],
    truth_s: np.ndarray,
    *,
    one_leg: bool,
    t_end_s: float,
    gaps: Sequence[Gap] = (),
    sensor_leg: str | None = None,
) -> ContactScore:
    """Contact accuracy of ``steps`` against ``truth_s`` ((k, 2): IC, TO), module protocol."""
    truth = truth_s.reshape(-1, 2)
    glitch = truth[:, 1] - truth[:, 0] < GLITCH_S
    truth = truth[~glitch]
    if one_leg and sensor_leg is not None:
        steps = [s for s in steps if s.foot in (None, sensor_leg)]
    det = np.array([(s.ic_s, s.to_s) for s in steps]).reshape(-1, 2)
    pairs = _match(det[:, 0], truth[:, 0], MATCH_TOLERANCE_S)

    def kept(c: np.ndarray) -> np.ndarray:
        return (
            (c[:, 0] >= SKIP_START_S)
            & (c[:, 1] <= t_end_s - LATENCY_BOUND_S)
            & ~_in_gaps(c[:, 0], c[:, 1], gaps)
        )

    keep_t = kept(truth)
    keep_d = kept(det)
    for i, k in pairs:
        keep_d[k] = keep_t[i]
    pairs = [(i, k) for i, k in pairs if keep_t[i]]
    ic_err = [(det[k, 0] - truth[i, 0]) * 1000 for i, k in pairs]
    gct_err = [((det[k, 1] - det[k, 0]) - (truth[i, 1] - truth[i, 0])) * 1000 for i, k in pairs]
    true_cad = cadence_from_ics(truth[keep_t, 0], one_leg)
    det_cad = cadence_from_ics(det[keep_d, 0], one_leg)
    return ContactScore(
        n_contacts=int(keep_t.sum()),
        n_detected=int(keep_d.sum()),
        matched=len(pairs),
        ic_errors_ms=tuple(ic_err),
        gct_errors_ms=tuple(gct_err),
        cadence_error_spm=None if true_cad is None or det_cad is None else det_cad - true_cad,
        truth_glitches_dropped=int(glitch.sum()),
    )


def stream_cadence_errors(
    events: Sequence[Event], truth_s: np.ndarray, reps_s: np.ndarray | None, *, one_leg: bool
) -> list[float]:
    """Per-second cadence error outside ±3 s of true rep boundaries (see the module notes)."""
    steps = [e for e in events if isinstance(e, StepEvent)]
    if not steps:
        return []
    emitted = np.array([s.emitted_s for s in steps])
    det_ic = np.array([s.ic_s for s in steps])
    truth_ic = truth_s.reshape(-1, 2)[:, 0]
    matched = dict(_match(det_ic, truth_ic, MATCH_TOLERANCE_S))
    true_of_det = {k: i for i, k in matched.items()}
    bounds = np.zeros(0) if reps_s is None else reps_s.ravel()
    errors: list[float] = []
    for m in (e for e in events if isinstance(e, Metrics)):
        if m.cadence_spm is None or m.t_s < SKIP_START_S:
            continue
        if bounds.size and np.min(np.abs(bounds - m.t_s)) <= REP_BOUNDARY_GUARD_S:
            continue
        last = int(np.searchsorted(emitted, m.t_s, side="left")) - 1
        window = range(max(0, last - STREAM_WINDOW_STEPS + 1), last + 1)
        idx = [true_of_det.get(k) for k in window]
        if len(idx) < 2 or any(i is None for i in idx):
            continue  # the engine's window holds a false or unmatched detection
        true_cad = cadence_from_ics(truth_ic[[i for i in idx if i is not None]], one_leg)
        if true_cad is not None:
            errors.append(m.cadence_spm - true_cad)
    return errors


def score_reps(summaries: Sequence[RepSummary], truth_reps: np.ndarray) -> RepScore:
    """Match detected reps to true ones by overlap (at least half of the shorter)."""
    found: dict[int, RepSummary] = {}
    false_reps = 0
    for rep in summaries:
        best, best_overlap = None, 0.0
        for i, (start, end) in enumerate(truth_reps):
            overlap = min(end, rep.end_s) - max(start, rep.start_s)
            shorter = min(end - start, rep.end_s - rep.start_s)
            if overlap >= 0.5 * shorter and overlap > best_overlap and i not in found:
                best, best_overlap = i, overlap
        if best is None:
            false_reps += 1
        else:
            found[best] = rep
    return RepScore(
        reps_true=len(truth_reps),
        reps_found=len(found),
        false_reps=false_reps,
        start_errors_s=tuple(found[i].start_s - truth_reps[i, 0] for i in sorted(found)),
        end_errors_s=tuple(found[i].end_s - truth_reps[i, 1] for i in sorted(found)),
    )


def evaluate_trial(trial: Trial, events: Sequence[Event] | None = None) -> TrialResult:
    """Run (unless ``events`` are given) and score one trial."""
    if events is None:
        events = run_trial(trial)
    samples = trial.samples()
    one_leg = Placement.parse(trial.placement).one_leg
    steps = [e for e in events if isinstance(e, StepEvent)]
    gaps = [e for e in events if isinstance(e, Gap)]
    contacts = score_contacts(
        steps,
        trial.contacts_s,
        one_leg=one_leg,
        t_end_s=float(samples.t_s[-1]) if len(samples) else 0.0,
        gaps=gaps,
    )
    reps_s = trial.reps_s
    reps = None
    stream: tuple[float, ...] = ()
    if reps_s is not None:
        reps = score_reps([e for e in events if isinstance(e, RepSummary)], reps_s)
        stream = tuple(stream_cadence_errors(events, trial.contacts_s, reps_s, one_leg=one_leg))
    return TrialResult(
        trial.name,
        trial.dataset,
        trial.activity,
        Placement.parse(trial.placement).value,
        contacts,
        stream,
        reps,
        tuple(events),
    )


def _mean(values: Iterable[float]) -> float | None:
    v = list(values)
    return float(np.mean(v)) if v else None


def _abs_mean(values: Iterable[float]) -> float | None:
    return _mean(abs(x) for x in values)


def _median_max(values: Sequence[float]) -> dict[str, float | None]:
    a = [abs(v) for v in values]
    return {"median": float(np.median(a)) if a else None, "max": max(a) if a else None}


def summarize(results: Sequence[TrialResult]) -> dict[str, Any]:
    """The figures of ``stridecue eval``: contacts pooled over the trials, cadence averaged."""
    c = [r.contacts for r in results]
    n_true = sum(x.n_contacts for x in c)
    n_det = sum(x.n_detected for x in c)
    matched = sum(x.matched for x in c)
    ic = [e for x in c for e in x.ic_errors_ms]
    gct = [e for x in c for e in x.gct_errors_ms]
    out: dict[str, Any] = {
        "trials": len(results),
        "n_contacts": n_true,
        "recall": matched / n_true if n_true else None,
        "precision": matched / n_det if n_det else None,
        "gct_mae_ms": _abs_mean(gct),
        "gct_bias_ms": _mean(gct),
        "ic_bias_ms": _mean(ic),
        "cadence_mae_spm": _abs_mean(
            x.cadence_error_spm for x in c if x.cadence_error_spm is not None
        ),
        "truth_glitches_dropped": sum(x.truth_glitches_dropped for x in c),
    }
    reps = [r.reps for r in results if r.reps is not None]
    if reps:
        stream = [e for r in results for e in r.stream_cadence_errors_spm]
        out |= {
            "stream_cadence_mae_spm": _abs_mean(stream),
            "stream_cadence_samples": len(stream),
            "reps_found": sum(r.reps_found for r in reps),
            "reps_true": sum(r.reps_true for r in reps),
            "false_reps": sum(r.false_reps for r in reps),
            "rep_start_err_s": _median_max([e for r in reps for e in r.start_errors_s]),
            "rep_end_err_s": _median_max([e for r in reps for e in r.end_errors_s]),
        }
    return out


def report(results: Sequence[TrialResult]) -> dict[str, Any]:
    """Figures per trial, per ``DATASET/ACTIVITY`` and per ``DATASET/ACTIVITY/PLACEMENT``."""
    datasets: dict[str, list[TrialResult]] = {}
    placements: dict[str, list[TrialResult]] = {}
    for r in results:
        datasets.setdefault(f"{r.dataset}/{r.activity}", []).append(r)
        placements.setdefault(f"{r.dataset}/{r.activity}/{r.placement}", []).append(r)
    return {
        "trials": {r.name: summarize([r]) for r in results},
        "datasets": {key: summarize(group) for key, group in sorted(datasets.items())},
        "placements": {key: summarize(group) for key, group in sorted(placements.items())},
    }


def finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become ``None``."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
