"""Contact lags fitted on some force-plate recordings and reported on the others.

A lag is the landmark's time minus the true event's: the detector runs with both lags at zero,
the lags are the median IC and TO errors over the *fitting* trials, and the contact-time error is
reported on the *held-out* trials with those lags applied. Folds:

- ``bach2022`` (shank): leave one runner out (the JSON ``runner`` field).
- ``alcantara2022`` (sacrum, one runner): two folds alternating along the trial numbers
  (trials 1, 5, 9, ... against 3, 7, 11, ...), both ways.

Walking contacts on the shank (``bach2022`` walking trials) are scored by detection only (walking
contact time is not published): the swing test (``swing_s``, ``swing_max_g``) and ``gct_max_s``
are chosen on the other walkers from a small grid (best pooled F1, ties to the middle of the tied
settings in grid order, never one that loses a running contact), and recall and precision are
reported on the held-out walker (leave one walker out: the JSON ``runner`` field).

Run ``python -m tests.dsp.calibration ../shared/data/running-truth`` to print the table that
``docs/dsp.md`` quotes; ``tests/dsp/test_steps.py`` asserts the same figures.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsp.events import Placement, StepEvent
from dsp.quality import QualityMonitor
from dsp.steps import CONFIGS, LandmarkConfig, StepDetector
from recordings.evaluate import score_contacts
from recordings.trials import Trial, find_trials


@dataclass(frozen=True, slots=True)
class Fold:
    """Lags fitted on ``fit`` trials, contact-time errors of the ``held_out`` ones."""

    held_out: tuple[str, ...]
    ic_lag_s: float
    to_lag_s: float
    gct_errors_ms: tuple[float, ...]


def raw_steps(trial: Trial, config: LandmarkConfig | None = None) -> list[StepEvent]:
    """The trial's contacts with both lags at zero: landmark times, not contact estimates."""
    placement = Placement.parse(trial.placement)
    config = dataclasses.replace(config or CONFIGS[placement], ic_lag_s=0.0, to_lag_s=0.0)
    return steps_of(trial, config)


def steps_of(trial: Trial, config: LandmarkConfig) -> list[StepEvent]:
    """The trial's contacts under ``config``, the stream fed in one block."""
    placement = Placement.parse(trial.placement)
    samples = trial.samples()
    t_s, acc_g = samples.t_s[None], samples.acc_g.T[None]
    quality = QualityMonitor(1, trial.sample_rate_hz).process(t_s, acc_g)
    detector = StepDetector(placement, trial.sample_rate_hz, config=config)
    return detector.process(t_s, acc_g, None, quality)[0]


def _errors_s(trial: Trial, steps: Sequence[StepEvent]) -> tuple[np.ndarray, np.ndarray]:
    """(IC, TO) landmark errors of the steps matched to a true contact, seconds."""
    score = score_contacts(
        steps,
        trial.contacts_s,
        one_leg=Placement.parse(trial.placement).one_leg,
        t_end_s=float(trial.samples().t_s[-1]),
    )
    ic = np.asarray(score.ic_errors_ms) / 1000.0
    gct = np.asarray(score.gct_errors_ms) / 1000.0
    return ic, ic + gct


def cross_validate(trials: Sequence[Trial], group: Callable[[Trial], str]) -> list[Fold]:
    """One fold per group: lags fitted on the other groups, errors reported on this one."""
    steps = {t.name: raw_steps(t) for t in trials}
    errors = {t.name: _errors_s(t, steps[t.name]) for t in trials}
    folds = []
    for g in sorted({group(t) for t in trials}):
        fit = [t for t in trials if group(t) != g]
        held = [t for t in trials if group(t) == g]
        ic_lag = float(np.median(np.concatenate([errors[t.name][0] for t in fit])))
        to_lag = float(np.median(np.concatenate([errors[t.name][1] for t in fit])))
        gct_ms = np.concatenate(
            [(errors[t.name][1] - errors[t.name][0]) - (to_lag - ic_lag) for t in held]
        )
        folds.append(Fold(tuple(t.name for t in held), ic_lag, to_lag, tuple(gct_ms * 1000.0)))
    return folds


def runner_of(trial: Trial) -> str:
    return str(trial.truth["runner"])


def alternate_of(trial: Trial) -> str:
    """Two folds alternating along the trial numbers (the files are trials 1, 3, 5, ... 31)."""
    return "A" if (int(trial.truth["trial"]) // 2) % 2 else "B"


def running_trials(running_truth: Path, dataset: str) -> list[Trial]:
    return [t for t in find_trials([running_truth / dataset]) if t.activity == "running"]


# The walking grid: swing_s, swing_max_g, gct_max_s (the shipped values in the middle).
WALKING_GRID = tuple(itertools.product((0.6, 0.8, 1.0), (0.3, 0.45, 0.6), (0.9, 1.0, 1.1)))


@dataclass(frozen=True, slots=True)
class WalkingFold:
    """Walking detection of one held-out walker, with settings chosen on the other walkers."""

    held_out: str
    swing_s: float
    swing_max_g: float
    gct_max_s: float
    matched: int
    n_contacts: int
    n_detected: int


def _counts(trial: Trial, config: LandmarkConfig) -> tuple[int, int, int]:
    """(matched, true contacts, detected contacts) of a shank trial under ``config``."""
    score = score_contacts(
        steps_of(trial, config),
        trial.contacts_s,
        one_leg=True,
        t_end_s=float(trial.samples().t_s[-1]),
    )
    return score.matched, score.n_contacts, score.n_detected


def walking_folds(running_truth: Path) -> list[WalkingFold]:
    """Leave one walker out on the bach2022 walking trials (see the module notes)."""
    trials = find_trials([running_truth / "bach2022"])
    walking = [t for t in trials if t.activity == "walking"]
    running = [t for t in trials if t.activity == "running"]
    counts: dict[tuple[float, float, float], dict[str, tuple[int, int, int]]] = {}
    for swing_s, swing_max_g, gct_max_s in WALKING_GRID:
        config = dataclasses.replace(
            CONFIGS[Placement.SHANK],
            swing_s=swing_s,
            swing_max_g=swing_max_g,
            gct_max_s=gct_max_s,
        )
        run = [_counts(t, config) for t in running]
        if any(m != n or m != d for m, n, d in run):
            continue  # a setting that loses or adds a running contact is never chosen
        counts[(swing_s, swing_max_g, gct_max_s)] = {t.name: _counts(t, config) for t in walking}
    folds = []
    for walker in sorted({runner_of(t) for t in walking}):
        fit = [t.name for t in walking if runner_of(t) != walker]
        held = [t.name for t in walking if runner_of(t) == walker]

        def f1(setting: tuple[float, float, float], names: list[str]) -> float:
            m, n, d = (sum(counts[setting][k][i] for k in names) for i in range(3))
            return 2.0 * m / (n + d)

        best = max(f1(s, fit) for s in counts)
        tied = [s for s in counts if f1(s, fit) >= best - 1e-12]
        chosen = tied[len(tied) // 2]
        m, n, d = (sum(counts[chosen][k][i] for k in held) for i in range(3))
        folds.append(WalkingFold(walker, *chosen, m, n, d))
    return folds


def main(running_truth: Path) -> None:
    for dataset, group in [("bach2022", runner_of), ("alcantara2022", alternate_of)]:
        trials = running_trials(running_truth, dataset)
        folds = cross_validate(trials, group)
        for f in folds:
            mae = np.abs(f.gct_errors_ms).mean()
            print(
                f"{dataset}: held out {len(f.held_out)} trials; lags fitted on the rest "
                f"IC {f.ic_lag_s * 1000:+.0f} ms, TO {f.to_lag_s * 1000:+.0f} ms; "
                f"held-out GCT MAE {mae:.1f} ms, bias {np.mean(f.gct_errors_ms):+.1f} ms"
            )
        pooled = np.concatenate([f.gct_errors_ms for f in folds])
        print(f"{dataset}: out-of-sample GCT MAE {np.abs(pooled).mean():.1f} ms (n={pooled.size})")
    walking = walking_folds(running_truth)
    for w in walking:
        print(
            f"bach2022 walking: held out {w.held_out}; chosen on the others swing_s {w.swing_s}, "
            f"swing_max_g {w.swing_max_g}, gct_max_s {w.gct_max_s}; held-out recall "
            f"{w.matched}/{w.n_contacts}, precision {w.matched}/{w.n_detected}"
        )
    m, n, d = (sum(getattr(w, k) for w in walking) for k in ("matched", "n_contacts", "n_detected"))
    print(
        f"bach2022 walking: out-of-sample recall {100 * m / n:.1f} %, precision {100 * m / d:.1f} %"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
