"""The simulator is no cleaner than real sensors: signal statistics against real recordings.

A simulator repeats its author's assumptions; a detector tuned on a clean simulator fails on a
real shoe. Each statistic is computed the same way, without contact truth, on a real recording
(``../shared/data/``) and on the simulator at the same placement, rate and range, and the
simulated value must lie on the messy side of the real one or within the stated band around it:

- ``quiet_stance``: per stride, the share of the quietest window (30 % of the stride, where the
  stance is) within 0.3 g of 1 g; a rigid simulated shoe reads 1.0, a real clip ~0.4;
- ``still_run_ms``: per stride, the longest run of samples within 0.3 g of 1 g;
- ``near_1g``: the share of all running samples within 0.3 g of 1 g;
- ``periodicity``: the autocorrelation peak of ``|a|`` at the stride lag (10 s windows);
- ``hf_share``: the share of ``|a|`` power above 10 Hz;
- ``reach_g``: the 99.9th percentile of ``|a|`` (a shoe's swing reaches the ±8 g range);
- ``clipped``: the share of axis values at the range;
- ``stance_near_1g`` (shank, with the force-plate contacts of the real trials and the
  simulator's exact ones): the share of stance samples within 0.3 g of 1 g.

Windows count as running when the stride periodicity says so (a stride of 0.55–0.9 s, a clear
autocorrelation peak, a moving signal): the real run holds walking and a stop.

Run ``python -m tests.firmware_sim.test_realism`` for the table of real against simulated values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dsp.events import Placement
from dsp.plan import SessionPlan
from firmware_sim import Impairments, SimulatedAthlete
from tests.conftest import SHARED_DIR

pytestmark = pytest.mark.shared

RANGE_G = 8.0
WINDOW_S = 10.0
NEAR_G = 0.3  # "near 1 g": the stillness tolerance a foot detector uses
STANCE_SHARE = 0.3  # of a stride, the window the quiet-stance statistic inspects
HF_HZ = 10.0
SEEDS = (1, 2, 3)
# An easy run long enough for 18 windows; the warm-up of the session is the part used.
EASY = SessionPlan(
    name="easy", warmup_s=200.0, reps=1, rep_s=20.0, min_recovery_s=60.0, cooldown_s=30.0
)
EASY_S = 180.0
BACH_HZ = 1000.0 / 7.0
TRIAL_S = 20.0  # the length of a treadmill trial


@dataclass(frozen=True)
class Band:
    """Where a simulated statistic may lie relative to the real one.

    ``messy``: +1 when a larger value is messier, -1 when a smaller one is, 0 when neither
    is (only the band applies). The simulated value passes when it lies on the messy side, or
    within ``slack`` (absolute) or ``ratio`` (relative) of the real value on the clean side, and
    never beyond ``limit`` (a sanity bound on the messy side, ``None`` for none).
    """

    messy: int
    slack: float = 0.0
    ratio: float = 1.0
    limit: Callable[[float], float] | None = None

    def admits(self, real: float, sim: float) -> bool:
        if self.limit is not None and (sim - self.limit(real)) * self.messy > 0:
            return False
        if self.messy > 0:
            return sim >= min(real - self.slack, real / self.ratio)
        return sim <= max(real + self.slack, real * self.ratio)


BANDS: dict[str, Band] = {
    "quiet_stance": Band(messy=-1, slack=0.15),
    "still_run_ms": Band(messy=-1, ratio=1.5),
    "near_1g": Band(messy=-1, slack=0.1),
    "periodicity": Band(messy=-1, slack=0.1, limit=lambda real: real - 0.3),
    "hf_share": Band(messy=+1, ratio=2.0, limit=lambda real: 3.0 * real),
    "reach_g": Band(messy=+1, ratio=1.6, limit=lambda real: 1.5 * real),
    "clipped": Band(messy=+1, ratio=2.0, limit=lambda real: max(0.01, 3 * real)),
    "stance_near_1g": Band(messy=-1, slack=0.15),
}


def _norm(acc_g: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.norm(acc_g, axis=1))


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    spectrum = np.fft.rfft(x, 2 * x.size)
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[: x.size]
    return np.asarray(ac / ac[0])


def _stride_lag(x: np.ndarray, fs_hz: float) -> tuple[int, float]:
    """The stride lag (samples) in 0.55–1.3 s and its autocorrelation peak."""
    ac = _autocorrelation(x)
    lo, hi = int(0.55 * fs_hz), int(1.3 * fs_hz)
    lag = lo + int(np.argmax(ac[lo:hi]))
    return lag, float(ac[lag])


def _is_running(x: np.ndarray, lag: int, peak: float, fs_hz: float) -> bool:
    return lag <= 0.9 * fs_hz and peak >= 0.3 and float(x.std()) > 0.4


def _longest_run(mask: np.ndarray) -> int:
    best = current = 0
    for near in mask:
        current = current + 1 if near else 0
        best = max(best, current)
    return best


def _stride_stats(x: np.ndarray, lag: int) -> tuple[list[float], list[int]]:
    """Per stride: the quiet-stance share and the longest near-1 g run (samples)."""
    width = max(round(STANCE_SHARE * lag), 2)
    off = np.abs(x - 1.0)
    moving = np.convolve(off, np.ones(width) / width, "valid")
    shares, runs = [], []
    for start in range(0, x.size - lag + 1, lag):
        quietest = start + int(np.argmin(moving[start : min(start + lag, moving.size)]))
        shares.append(float(np.mean(off[quietest : quietest + width] < NEAR_G)))
        runs.append(_longest_run(off[start : start + lag] < NEAR_G))
    return shares, runs


def _hf_share(x: np.ndarray, fs_hz: float) -> float:
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freq = np.fft.rfftfreq(x.size, 1.0 / fs_hz)
    return float(power[freq > HF_HZ].sum() / power.sum())


def statistics(acc_g: np.ndarray, fs_hz: float) -> dict[str, float]:
    """Contact-free statistics of the running windows of one recording (see the module doc)."""
    norm = _norm(acc_g)
    size = int(WINDOW_S * fs_hz)
    shares: list[float] = []
    runs: list[int] = []
    near: list[float] = []
    peaks: list[float] = []
    hf: list[float] = []
    for start in range(0, norm.size - size + 1, size):
        x = norm[start : start + size]
        lag, peak = _stride_lag(x, fs_hz)
        if not _is_running(x, lag, peak, fs_hz):
            continue
        s, r = _stride_stats(x, lag)
        shares += s
        runs += r
        near.append(float(np.mean(np.abs(x - 1.0) < NEAR_G)))
        peaks.append(peak)
        hf.append(_hf_share(x, fs_hz))
    assert len(peaks) >= 3, "too few running windows to compare"
    return {
        "quiet_stance": float(np.median(shares)),
        "still_run_ms": float(np.median(runs)) * 1000.0 / fs_hz,
        "near_1g": float(np.median(near)),
        "periodicity": float(np.median(peaks)),
        "hf_share": float(np.median(hf)),
        "reach_g": float(np.percentile(norm, 99.9)),
        "clipped": float(np.mean(np.abs(acc_g) >= 0.99 * RANGE_G)),
    }


def stance_near_1g(acc_g: np.ndarray, t_s: np.ndarray, contacts_s: list[list[float]]) -> float:
    """The share of stance samples (true contacts) within 0.3 g of 1 g."""
    off = np.abs(_norm(acc_g) - 1.0)
    inside = np.zeros(t_s.size, dtype=bool)
    for ic, to in contacts_s:
        inside |= (t_s >= ic) & (t_s < to)
    return float(np.mean(off[inside] < NEAR_G))


def _load_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as f:
        names = f.readline().strip().split(",")
    columns = [names.index(f"acc_{axis}_g") for axis in "xyz"]
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, 0], data[:, columns]


def _simulated(placement: Placement, fs_hz: float, seed: int) -> SimulatedAthlete:
    impairments = Impairments(saturation_g=RANGE_G, accel_only=True)
    return SimulatedAthlete(EASY, placement, seed=seed, fs_hz=fs_hz, impairments=impairments)


def real_and_simulated(placement: Placement, shared: Path) -> dict[str, tuple[float, list[float]]]:
    """Statistic → (real value, simulated value per seed) for one placement."""
    sims: list[dict[str, float]] = []
    if placement is Placement.SHANK:
        trials = sorted((shared / "data" / "running-truth" / "bach2022").glob("*_running.csv"))
        per_trial = []
        for path in trials:
            meta = json.loads(path.with_suffix(".json").read_text())
            t_s, acc = _load_csv(path)
            stats = _trial_statistics(acc, float(meta["sample_rate_hz"]))
            stats["stance_near_1g"] = stance_near_1g(acc, t_s, meta["contacts_s"])
            per_trial.append(stats)
        real = {key: float(np.median([s[key] for s in per_trial])) for key in per_trial[0]}
        for seed in SEEDS:
            athlete = _simulated(placement, BACH_HZ, seed)
            block = athlete.read(EASY_S)
            own = [[ic, to] for ic, to, leg in athlete.truth().contacts_s if leg == "left"]
            # Trials as long as the treadmill ones, summarised like them.
            size = round(TRIAL_S * BACH_HZ)
            chunks = [
                _trial_statistics(block.acc_g[i : i + size], BACH_HZ)
                for i in range(0, block.t_s.size - size + 1, size)
            ]
            stats = {key: float(np.median([c[key] for c in chunks])) for key in chunks[0]}
            stats["stance_near_1g"] = stance_near_1g(block.acc_g, block.t_s, own)
            sims.append(stats)
    else:
        name = "ankle" if placement is Placement.FOOT else "hip"
        _, acc = _load_csv(
            shared / "data" / "real-runs" / "adept2018" / f"run_part1_left_{name}.csv"
        )
        real = statistics(acc, 100.0)
        for seed in SEEDS:
            sims.append(statistics(_simulated(placement, 100.0, seed).read(EASY_S).acc_g, 100.0))
    return {key: (real[key], [s[key] for s in sims]) for key in real}


def _trial_statistics(acc_g: np.ndarray, fs_hz: float) -> dict[str, float]:
    """The statistics of short treadmill trials: each whole trial is one window."""
    norm = _norm(acc_g)
    lag, peak = _stride_lag(norm, fs_hz)
    shares, runs = _stride_stats(norm, lag)
    return {
        "quiet_stance": float(np.median(shares)),
        "still_run_ms": float(np.median(runs)) * 1000.0 / fs_hz,
        "near_1g": float(np.mean(np.abs(norm - 1.0) < NEAR_G)),
        "periodicity": peak,
        "hf_share": _hf_share(norm, fs_hz),
        "reach_g": float(np.percentile(norm, 99.9)),
        "clipped": float(np.mean(np.abs(acc_g) >= 0.99 * RANGE_G)),
    }


@pytest.fixture(scope="module", params=[Placement.FOOT, Placement.TRUNK, Placement.SHANK])
def compared(
    request: pytest.FixtureRequest, shared_dir: Path
) -> tuple[Placement, dict[str, tuple[float, list[float]]]]:
    placement: Placement = request.param
    return placement, real_and_simulated(placement, shared_dir)


# On the trunk a still moment is the mid-stance of a force curve, not a stance: the stance
# statistics are compared on the shoe and the shank only, where stillness is what a detector
# waits for.
_NOT_ON = {Placement.TRUNK: {"quiet_stance", "still_run_ms", "near_1g"}}


def test_the_simulator_is_no_cleaner_than_real_sensors(
    compared: tuple[Placement, dict[str, tuple[float, list[float]]]],
) -> None:
    placement, values = compared
    failures = [
        f"{key}: real {real:.3f}, simulated {', '.join(f'{v:.3f}' for v in sims)}"
        for key, (real, sims) in values.items()
        if key not in _NOT_ON.get(placement, set())
        for v in sims
        if not BANDS[key].admits(real, v)
    ]
    assert not failures, f"{placement.value}: cleaner than reality: " + "; ".join(failures)


def main() -> None:
    """Print the table of real against simulated statistics, per placement."""
    print("| placement | statistic | real | simulated (seeds 1, 2, 3) | band |")
    print("|---|---|---|---|---|")
    for placement in (Placement.FOOT, Placement.TRUNK, Placement.SHANK):
        for key, (real, sims) in real_and_simulated(placement, SHARED_DIR).items():
            if key in _NOT_ON.get(placement, set()):
                continue
            ok = all(BANDS[key].admits(real, v) for v in sims)
            cells = ", ".join(f"{v:.3f}" for v in sims)
            print(
                f"| {placement.value} | {key} | {real:.3f} | {cells} | {'ok' if ok else 'FAIL'} |"
            )


if __name__ == "__main__":
    main()
