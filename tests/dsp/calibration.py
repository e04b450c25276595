"""Contact lags fitted on some force-plate recordings and reported on the others.

A lag is the landmark's time minus the true event's: the detector runs with both lags at zero,
the lags are the median IC and TO errors over the *fitting* trials, and the contact-time error is
reported on the *held-out* trials with those lags applied. Folds:

- ``bach2022`` (shank): leave one runner out (the JSON ``runner`` field).
- ``alcantara2022`` (sacrum, one runner): two folds alternating along the trial numbers
  (trials 1, 5, 9, ... against 3, 7, 11, ...), both ways.

Run ``python -m tests.dsp.calibration ../shared/data/running-truth`` to print the table that
``docs/dsp.md`` quotes; ``tests/dsp/test_steps.py`` asserts the same figures.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsp.events import Placement, StepEvent
from dsp.quality import QualityMonitor
from dsp.steps import CONFIGS, StepDetector
from recordings.evaluate import score_contacts
from recordings.trials import Trial, find_trials


@dataclass(frozen=True, slots=True)
class Fold:
    """Lags fitted on ``fit`` trials, contact-time errors of the ``held_out`` ones."""

    held_out: tuple[str, ...]
    ic_lag_s: float
    to_lag_s: float
    gct_errors_ms: tuple[float, ...]


def raw_steps(trial: Trial) -> list[StepEvent]:
    """The trial's contacts with both lags at zero: landmark times, not contact estimates."""
    placement = Placement.parse(trial.placement)
    config = dataclasses.replace(CONFIGS[placement], ic_lag_s=0.0, to_lag_s=0.0)
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


if __name__ == "__main__":
    main(Path(sys.argv[1]))
