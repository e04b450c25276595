"""Agreement of sensors worn at once, for recordings without contact truth (`stridecue eval`).

A real run outside a laboratory has no force plate. What can be checked is agreement: sensors
worn at the same time by the same runner must report the same cadence, and each must agree with
the stride periodicity of the signal itself. Protocol:

- **Windows**: consecutive, non-overlapping windows of 10 s from t = 0, (start, start + 10];
  only whole windows (the recording reaches their end).
- **Published cadence** of a sensor for a window: the median of the engine's *trusted*
  per-second cadences (``Metrics.trusted``) whose second lies in the window; none if there is none.
- **Periodicity reference** of a sensor for a window: offline and non-causal (the whole window,
  centred on it). ``|a|`` is binned onto a uniform grid at the nominal rate (a lost sample is a
  hole, not a shift), the mean is removed, and the autocorrelation is normalised by the number of
  sample pairs at each lag. The stride is the shortest lag between 0.5 and 2.0 s whose local peak
  is at least 70 % of the highest there, refined by a parabola; cadence = 120 / stride. A trunk
  sensor's lag with no peak near half of it (within 25 %, at least 30 % as high) is a step: the
  stride is the highest peak within 10 % of twice it. No peak of at least 0.3: no periodicity.
  It is written apart from ``dsp.periodicity`` on purpose (no shared code): a flaw there cannot
  hide itself by also shaping its own reference.
- **Recording**: trials of one dataset sharing a recording id, the truth's ``recording`` key or
  else the file name minus its last ``_`` part (``run_part1_left_ankle`` and
  ``run_part1_left_hip`` are the recording ``run_part1_left``).
- **Reference sensor** of a recording: its first one-leg sensor (foot, then shank, by name),
  else its first sensor. Every sensor of the recording is also compared with it.
- **Activity** of a window, from the reference sensor: ``still`` when its ``|a|`` barely moves
  (standard deviation < 0.05 g) or has no periodicity; ``walking`` when its periodicity is below
  135 steps/min; ``running`` at or above.
- **Figures**, per sensor: running windows whose published cadence lies within 3 spm of the
  reference sensor's periodicity, walking windows within 5 spm, still windows with no published
  cadence (no phantom steps); the same against the sensor's own periodicity (windows where it has
  one); per pair of sensors, windows where both publish a cadence within the same tolerance of
  each other. A window without a published cadence counts against running and walking figures.

``stridecue eval --json`` puts these under ``"agreement"`` (present only when some trial has no
contact truth; those trials are left out of the contact sections):

- ``window_s``, and ``targets``: the share each figure should reach;
- ``recordings``: per ``DATASET/RECORDING``: ``dataset``, ``activity``, ``reference`` (the trial
  whose periodicity is the reference), ``windows`` (count per activity), ``sensors`` (per trial:
  ``placement`` and the figures ``running_within_3_spm``, ``walking_within_5_spm``,
  ``still_no_cadence``, ``own_running_within_3_spm``, ``own_walking_within_5_spm``), ``pairs``
  (``sensors``: two trials, and the running and walking figures) and ``per_window`` (``start_s``,
  ``activity``, ``reference_spm``, and per trial ``published_spm`` and ``periodicity_spm``);
- ``placements``: the sensor figures pooled per ``DATASET/ACTIVITY/PLACEMENT``.

Every figure is ``{"agree": windows that agree, "of": windows counted, "share": agree / of}``
(``share`` is ``null`` when no window counts).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from dsp.events import Event, Metrics, Placement
from recordings.trials import Trial

WINDOW_S: Final = 10.0
STILL_STD_G: Final = 0.05
RUNNING_MIN_SPM: Final = 135.0
STRIDE_RANGE_S: Final = (0.5, 2.0)
STRONG_PEAK_RATIO: Final = 0.7
MIN_PEAK_R: Final = 0.3
STEP_PEAK_RATIO: Final = 0.3
TOLERANCE_SPM: Final = {"running": 3.0, "walking": 5.0}
# What the issue asks of the engine; the figures are shown against them, not tuned to them.
TARGETS: Final = {
    "running_within_3_spm": 0.95,
    "walking_within_5_spm": 0.90,
    "still_no_cadence": 0.95,
}
ACTIVITIES: Final = ("running", "walking", "still")


@dataclass(frozen=True, slots=True)
class WindowReading:
    """One sensor over one window: what the engine published and what the signal shows."""

    start_s: float
    published_spm: float | None
    periodicity_spm: float | None
    norm_std_g: float


@dataclass(frozen=True, slots=True)
class SensorWindows:
    """One trial without contact truth, cut into windows."""

    name: str
    dataset: str
    activity: str
    placement: str
    recording: str
    windows: tuple[WindowReading, ...]


def recording_id(trial: Trial) -> str:
    """The recording a trial belongs to: the truth's ``recording``, else the file name minus its
    last ``_`` part (the placement: ``run_part1_left_ankle`` -> ``run_part1_left``)."""
    explicit = trial.truth.get("recording")
    if explicit is not None:
        return str(explicit)
    stem = Path(trial.path).stem
    if stem.endswith(".truth"):
        stem = stem.removesuffix(".truth")
    head, sep, _ = stem.rpartition("_")
    return head if sep and head else stem


def _grid(
    t_s: np.ndarray, norm_g: np.ndarray, fs_hz: float, start_s: float, window_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """``|a|`` of the window on a uniform grid at ``fs_hz``: (mean per bin, bin filled)."""
    n = round(window_s * fs_hz)
    pos = np.floor((t_s - start_s) * fs_hz + 1e-6).astype(np.intp)
    ok = (pos >= 0) & (pos < n)
    total = np.bincount(pos[ok], norm_g[ok], minlength=n)
    count = np.bincount(pos[ok], minlength=n)
    filled = count > 0
    return np.where(filled, total / np.maximum(count, 1), 0.0), filled


def _local_peaks(r: np.ndarray) -> np.ndarray:
    out = np.zeros(r.shape, dtype=bool)
    out[1:-1] = (r[1:-1] > r[:-2]) & (r[1:-1] >= r[2:])
    return out


def periodicity_reference(
    t_s: np.ndarray,
    norm_g: np.ndarray,
    fs_hz: float,
    start_s: float,
    window_s: float = WINDOW_S,
    *,
    one_leg: bool,
) -> tuple[float | None, float]:
    """The stride periodicity of ``|a|`` over one window, offline (see the module notes).

    Returns the cadence (steps/min, ``None`` without periodicity) and the standard deviation of
    ``|a|`` over the window (g).
    """
    x, filled = _grid(t_s, norm_g, fs_hz, start_s, window_s)
    if filled.sum() < 2:
        return None, 0.0
    std_g = float(np.std(x[filled]))
    y = np.where(filled, x - x[filled].mean(), 0.0)
    m = filled.astype(float)
    n = len(y)
    acov = np.correlate(y, y, "full")[n - 1 :]
    pairs = np.correlate(m, m, "full")[n - 1 :]
    # Normalised by the pairs at each lag: every lag of the window weighs the same.
    c = np.where(pairs > 0.5 * pairs[0], acov / np.maximum(pairs, 1.0), np.nan)
    if not c[0] > 0:
        return None, std_g
    r = c / c[0]
    peaks = _local_peaks(np.nan_to_num(r, nan=-np.inf))
    lo = round(STRIDE_RANGE_S[0] * fs_hz)
    hi = min(n - 2, round(STRIDE_RANGE_S[1] * fs_hz))
    candidates = [k for k in range(lo, hi + 1) if peaks[k]]
    top = max((float(r[k]) for k in candidates), default=-np.inf)
    if top < MIN_PEAK_R:
        return None, std_g
    lag = next(k for k in candidates if r[k] >= STRONG_PEAK_RATIO * top)
    if not one_leg:
        half_lo, half_hi = max(1, int(0.375 * lag)), int(np.ceil(0.625 * lag))
        step_peaks = [j for j in range(half_lo, half_hi + 1) if peaks[j]]
        if not any(r[j] >= STEP_PEAK_RATIO * r[lag] for j in step_peaks):
            # No step at half of it: the lag is a step (left and right alike), the stride twice it.
            near = [j for j in range(int(1.8 * lag), min(n - 2, int(np.ceil(2.2 * lag))) + 1)]
            doubles = [j for j in near if peaks[j]]
            if not doubles:
                return None, std_g
            lag = max(doubles, key=lambda j: float(r[j]))
    y0, y1, y2 = float(r[lag - 1]), float(r[lag]), float(r[lag + 1])
    curve = y0 - 2.0 * y1 + y2
    shift = 0.5 * (y0 - y2) / curve if curve < 0 else 0.0
    return 120.0 * fs_hz / (lag + float(np.clip(shift, -0.5, 0.5))), std_g


def published_cadence(metrics: Iterable[Metrics], start_s: float, window_s: float) -> float | None:
    """Median of the trusted per-second cadences whose second lies in (start, start + window]."""
    values = [
        m.cadence_spm
        for m in metrics
        if m.trusted and m.cadence_spm is not None and start_s < m.t_s <= start_s + window_s
    ]
    return float(np.median(values)) if values else None


def sensor_windows(
    trial: Trial, events: Sequence[Event], window_s: float = WINDOW_S
) -> SensorWindows:
    """Cut one trial (and the engine's events on it) into windows (see the module notes)."""
    samples = trial.samples()
    fs_hz = trial.sample_rate_hz
    one_leg = Placement.parse(trial.placement).one_leg
    norm_g = np.linalg.norm(samples.acc_g, axis=1)
    metrics = [e for e in events if isinstance(e, Metrics)]
    # Whole windows only: the recording reaches the window's end (within one sample period).
    end_s = float(samples.t_s[-1]) + 1.0 / fs_hz if len(samples) else 0.0
    n_windows = int(np.floor(end_s / window_s + 1e-6))
    windows = []
    for k in range(n_windows):
        start_s = k * window_s
        reference, std_g = periodicity_reference(
            samples.t_s, norm_g, fs_hz, start_s, window_s, one_leg=one_leg
        )
        windows.append(
            WindowReading(start_s, published_cadence(metrics, start_s, window_s), reference, std_g)
        )
    return SensorWindows(
        trial.name,
        trial.dataset,
        trial.activity,
        Placement.parse(trial.placement).value,
        recording_id(trial),
        tuple(windows),
    )


def _window_activity(w: WindowReading) -> str:
    if w.norm_std_g < STILL_STD_G or w.periodicity_spm is None:
        return "still"
    return "running" if w.periodicity_spm >= RUNNING_MIN_SPM else "walking"


def _reference_sensor(sensors: Sequence[SensorWindows]) -> SensorWindows:
    order = {Placement.FOOT.value: 0, Placement.SHANK.value: 1}
    return min(sensors, key=lambda s: (order.get(s.placement, 2), s.name))


def _count(agree: int, of: int) -> dict[str, Any]:
    return {"agree": agree, "of": of, "share": round(agree / of, 4) if of else None}


def _within(value: float | None, reference: float | None, tolerance_spm: float) -> bool:
    return value is not None and reference is not None and abs(value - reference) <= tolerance_spm


def _sensor_figures(
    sensor: SensorWindows, reference: SensorWindows, classes: Sequence[str]
) -> dict[str, Any]:
    hits: dict[str, list[int]] = {}
    for w, ref, activity in zip(sensor.windows, reference.windows, classes, strict=False):
        if activity == "still":
            hits.setdefault("still_no_cadence", []).append(w.published_spm is None)
            continue
        tol = TOLERANCE_SPM[activity]
        key = f"{activity}_within_{tol:g}_spm"
        hits.setdefault(key, []).append(_within(w.published_spm, ref.periodicity_spm, tol))
        if w.periodicity_spm is not None:
            own = _within(w.published_spm, w.periodicity_spm, tol)
            hits.setdefault(f"own_{key}", []).append(own)
    keys = [*TARGETS, *(f"own_{k}" for k in TARGETS if k != "still_no_cadence")]
    out: dict[str, Any] = {"placement": sensor.placement}
    out |= {k: _count(sum(hits.get(k, [])), len(hits.get(k, []))) for k in keys}
    return out


def _pair_figures(a: SensorWindows, b: SensorWindows, classes: Sequence[str]) -> dict[str, Any]:
    hits: dict[str, list[int]] = {}
    for wa, wb, activity in zip(a.windows, b.windows, classes, strict=False):
        if activity == "still":
            continue
        tol = TOLERANCE_SPM[activity]
        key = f"{activity}_within_{tol:g}_spm"
        hits.setdefault(key, []).append(_within(wa.published_spm, wb.published_spm, tol))
    out: dict[str, Any] = {"sensors": [a.name, b.name]}
    out |= {k: _count(sum(hits.get(k, [])), len(hits.get(k, []))) for k in list(TARGETS)[:2]}
    return out


def _optional(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def recording_agreement(sensors: Sequence[SensorWindows]) -> dict[str, Any]:
    """The figures of one recording (sensors worn at once; see the module notes)."""
    reference = _reference_sensor(sensors)
    classes = [_window_activity(w) for w in reference.windows]
    n = min(len(s.windows) for s in sensors)
    classes = classes[:n]
    ordered = sorted(sensors, key=lambda s: (s is not reference, s.name))
    return {
        "dataset": reference.dataset,
        "activity": reference.activity,
        "reference": reference.name,
        "windows": {a: classes.count(a) for a in ACTIVITIES},
        "sensors": {s.name: _sensor_figures(s, reference, classes) for s in ordered},
        "pairs": [_pair_figures(a, b, classes) for a, b in itertools.combinations(ordered, 2)],
        "per_window": [
            {
                "start_s": reference.windows[k].start_s,
                "activity": classes[k],
                "reference_spm": _optional(reference.windows[k].periodicity_spm),
                "published_spm": {s.name: _optional(s.windows[k].published_spm) for s in ordered},
                "periodicity_spm": {
                    s.name: _optional(s.windows[k].periodicity_spm) for s in ordered
                },
            }
            for k in range(n)
        ],
    }


def _pooled(figures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"sensors": len(figures)}
    for key in (k for k in figures[0] if isinstance(figures[0][k], dict)):
        agree = sum(f[key]["agree"] for f in figures)
        out[key] = _count(agree, sum(f[key]["of"] for f in figures))
    return out


def agreement_report(sensors: Sequence[SensorWindows]) -> dict[str, Any]:
    """The ``agreement`` section of ``stridecue eval``: per recording, and pooled per
    ``DATASET/ACTIVITY/PLACEMENT``."""
    groups: dict[str, list[SensorWindows]] = {}
    for s in sensors:
        groups.setdefault(f"{s.dataset}/{s.recording}", []).append(s)
    recordings = {key: recording_agreement(group) for key, group in sorted(groups.items())}
    pooled: dict[str, list[dict[str, Any]]] = {}
    for rec in recordings.values():
        for figures in rec["sensors"].values():
            key = f"{rec['dataset']}/{rec['activity']}/{figures['placement']}"
            pooled.setdefault(key, []).append(figures)
    return {
        "window_s": WINDOW_S,
        "targets": dict(TARGETS),
        "recordings": recordings,
        "placements": {key: _pooled(group) for key, group in sorted(pooled.items())},
    }
