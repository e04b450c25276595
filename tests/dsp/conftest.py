"""Shared helpers of the DSP tests: random rotations and block cuts, real trials, a detector run."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from dsp.events import Placement, StepEvent
from dsp.quality import QualityMonitor
from dsp.steps import StepDetector
from recordings.trials import find_trials

FloatArray = NDArray[np.float64]


def random_rotation(rng: np.random.Generator) -> FloatArray:
    """A uniformly random proper rotation matrix (3, 3)."""
    return Rotation.random(random_state=rng).as_matrix()


UPSIDE_DOWN: FloatArray = np.diag([1.0, -1.0, -1.0])
"""Half a turn about x: the sensor mounted the other way up."""


def random_bounds(
    rng: np.random.Generator, n: int, max_block: int, empty_fraction: float = 0.1
) -> list[int]:
    """Block boundaries ``0 = b0 <= b1 <= ... = n``: sizes 1..max_block, some blocks empty."""
    sizes = rng.integers(1, max_block + 1, size=n + 1)
    sizes[rng.random(n + 1) < empty_fraction] = 0
    ends = np.cumsum(sizes)
    return [0, *ends[ends < n].tolist(), n]


@dataclass(frozen=True, slots=True)
class Recording:
    """One real running trial, loaded: ``acc_g`` (n, 3), ``contacts_s`` (k, 2) force-plate truth."""

    name: str
    placement: Placement
    fs_hz: float
    t_s: FloatArray
    acc_g: FloatArray
    contacts_s: FloatArray


def detect(
    placement: Placement,
    fs_hz: float,
    t_s: FloatArray,
    acc_g: FloatArray,
    bounds: list[int] | None = None,
) -> list[list[StepEvent]]:
    """Run quality monitor + step detector on a bank: ``t_s`` (S, n), ``acc_g`` (S, n, 3).

    The blocks are ``[bounds[i], bounds[i + 1])`` (the whole stream at once by default), wired as
    the engine wires them. Returns every stream's steps in order of confirmation.
    """
    s, n = t_s.shape
    bounds = [0, n] if bounds is None else bounds
    quality = QualityMonitor(s, fs_hz)
    detector = StepDetector(placement, fs_hz, s)
    out: list[list[StepEvent]] = [[] for _ in range(s)]
    acc = np.moveaxis(acc_g, 2, 1)  # (S, 3, n), the detector's layout
    for a, b in itertools.pairwise(bounds):
        q = quality.process(t_s[:, a:b], acc[:, :, a:b])
        for row, steps in enumerate(detector.process(t_s[:, a:b], acc[:, :, a:b], None, q)):
            out[row].extend(steps)
    return out


def detect_one(
    rec: Recording, acc_g: FloatArray | None = None, bounds: list[int] | None = None
) -> list[StepEvent]:
    """:func:`detect` on one recording, optionally with its acceleration (n, 3) replaced."""
    acc = rec.acc_g if acc_g is None else acc_g
    return detect(rec.placement, rec.fs_hz, rec.t_s[None], acc[None], bounds)[0]


def _load(running_truth: Path, dataset: str) -> list[Recording]:
    out = []
    for trial in find_trials([running_truth / dataset]):
        if trial.activity != "running":
            continue
        samples = trial.samples()
        out.append(
            Recording(
                trial.name,
                Placement.parse(trial.placement),
                trial.sample_rate_hz,
                samples.t_s,
                samples.acc_g,
                trial.contacts_s,
            )
        )
    return out


@pytest.fixture(scope="session")
def bach_running(running_truth: Path) -> list[Recording]:
    """Bach 2022: 5 running trials, shank sensor (±8 g), truth of the sensor leg only."""
    return _load(running_truth, "bach2022")


@pytest.fixture(scope="session")
def alcantara_running(running_truth: Path) -> list[Recording]:
    """Alcantara 2022: 16 running trials, sacrum sensor, truth of both feet."""
    return _load(running_truth, "alcantara2022")
