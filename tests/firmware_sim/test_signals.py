"""Signal physics a step detector relies on, asserted against the simulator's exact truth."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from dsp.events import Placement
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from firmware_sim import SimulatedAthlete, Truth
from firmware_sim.gait import AthleteProfile

SHORT = SessionPlan(
    name="short", warmup_s=60.0, reps=3, rep_s=20.0, min_recovery_s=40.0, cooldown_s=30.0
)
FS_HZ = 200.0
DT_MS = 1000.0 / FS_HZ


@dataclass(frozen=True)
class Session:
    block: SampleBlock
    truth: Truth
    profile: AthleteProfile

    def own_contacts(self) -> list[tuple[float, float]]:
        """The sensor leg's contacts, without the first and last few (edges of the stream)."""
        pairs = [(ic, to) for ic, to, leg in self.truth.contacts_s if leg == "left"]
        return pairs[2:-2]

    def index(self, t_s: float) -> int:
        return round(t_s * FS_HZ)

    def window(self, start_s: float, stop_s: float) -> slice:
        return slice(int(np.ceil(start_s * FS_HZ)), int(np.floor(stop_s * FS_HZ)) + 1)

    def in_rep(self, t_s: float) -> bool:
        """Settled stride pace: at least 4 s into a rep."""
        return any(start + 4.0 <= t_s <= end for start, end in self.truth.reps_s)

    def easy(self, t_s: float) -> bool:
        return all(not start - 5.0 <= t_s <= end + 10.0 for start, end in self.truth.reps_s)


def _gyro(block: SampleBlock) -> np.ndarray:
    assert block.gyro_dps is not None
    return block.gyro_dps


def _session(placement: Placement, seed: int) -> Session:
    athlete = SimulatedAthlete(SHORT, placement, seed=seed, fs_hz=FS_HZ)
    block = athlete.read(1e4)
    assert athlete.done
    return Session(block, athlete.truth(), athlete.profile)


@pytest.fixture(scope="module", params=[1, 2])
def foot(request: pytest.FixtureRequest) -> Session:
    return _session(Placement.FOOT, request.param)


@pytest.fixture(scope="module", params=[1, 2])
def shank(request: pytest.FixtureRequest) -> Session:
    return _session(Placement.SHANK, request.param)


@pytest.fixture(scope="module", params=[1, 2])
def trunk(request: pytest.FixtureRequest) -> Session:
    return _session(Placement.TRUNK, request.param)


def _norm(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=1)


def test_foot_stance_is_flat_for_a_moment_but_never_still(foot: Session) -> None:
    """A shoe is not rigid: near 1 g for only part of the contact, as on real shoe clips."""
    acc_norm, gyro_norm = _norm(foot.block.acc_g), _norm(_gyro(foot.block))
    off = np.abs(acc_norm - 1.0)
    shares = []
    for ic, to in foot.own_contacts():
        stance = foot.window(ic, to)
        # The flattest 25 ms of the stance (where it lies depends on the strike and the pace).
        moving = np.convolve(off[stance], np.ones(5) / 5, "valid")
        flat = slice(
            stance.start + int(np.argmin(moving)), stance.start + int(np.argmin(moving)) + 5
        )
        assert off[flat].mean() < 0.3
        # Mid-stance turns slowly; the pod faces backward on the laces with z up.
        mid = foot.window((ic + to) / 2 - 0.01, (ic + to) / 2 + 0.01)
        assert gyro_norm[mid].max() < 60.0
        assert np.median(foot.block.acc_g[mid, 2]) > 0.3
        shares.append(np.mean(off[stance] < 0.3))
    # Stance is near 1 g for part of the contact only, and its samples move by tenths of a g.
    assert 0.15 <= np.median(shares) <= 0.7
    assert max(shares) < 0.9


def test_foot_pitch_rate_minimum_is_at_toe_off(foot: Session) -> None:
    pitch = _gyro(foot.block)[:, 1]
    for ic, to in foot.own_contacts():
        win = foot.window(to - 0.08, to + 0.08)
        k = win.start + int(np.argmin(pitch[win]))
        assert abs(foot.block.t_s[k] - to) <= 0.010
        assert -820.0 <= pitch[k] <= -290.0
        # A negative dip at IC, against a quiet mid-stance.
        assert pitch[foot.index(ic)] < -100.0


def test_foot_swing_peak_is_large_and_grows_with_pace(foot: Session) -> None:
    pitch = _gyro(foot.block)[:, 1]
    easy: list[float] = []
    fast: list[float] = []
    for ic, to in foot.own_contacts():
        peak = pitch[foot.window(to, to + 0.4)].max()
        assert 400.0 <= peak <= 1100.0
        (fast if foot.in_rep(ic) else easy if foot.easy(ic) else []).append(peak)
    assert np.median(easy) >= 520.0
    assert np.median(fast) >= np.median(easy) + 120.0


def test_foot_pitch_angle_closes_over_every_stride(foot: Session) -> None:
    """Integrating the pitch rate from one mid-stance to the next returns to a flat foot."""
    pitch = _gyro(foot.block)[:, 1]
    contacts = foot.own_contacts()
    for (ic, to), (ic2, to2) in itertools.pairwise(contacts):
        stride = slice(foot.index((ic + to) / 2), foot.index((ic2 + to2) / 2))
        assert abs(pitch[stride].sum() / FS_HZ) < 4.0  # degrees


def test_foot_impact_and_push_off_landmarks(foot: Session) -> None:
    acc_norm = _norm(foot.block.acc_g)
    easy: list[float] = []
    fast: list[float] = []
    for ic, to in foot.own_contacts():
        impact = acc_norm[foot.window(ic, ic + 0.03)].max()
        assert 3.0 <= impact <= 12.0  # the impact sets the mount ringing
        (fast if foot.in_rep(ic) else easy if foot.easy(ic) else []).append(impact)
        win = foot.window(to - 0.03, to + 0.03)
        k = win.start + int(np.argmax(acc_norm[win]))
        assert abs(foot.block.t_s[k] - to) <= 0.010
        # Push-off plus the roll over the toes (the sensor feels its centripetal acceleration).
        assert 1.8 <= acc_norm[k] <= 7.5
    assert np.median(fast) > 1.4 * np.median(easy)


def _long_axis(block: SampleBlock) -> np.ndarray:
    """The direction of mean gravity: orientation-free, as a detector would find it."""
    mean = block.acc_g.mean(axis=0)
    return block.acc_g @ (mean / np.linalg.norm(mean))


def test_shank_impact_peak_lags_initial_contact(shank: Session) -> None:
    acc_norm = _norm(shank.block.acc_g)
    lags_ms = []
    for ic, _ in shank.own_contacts():
        win = shank.window(ic, ic + 0.08)
        k = win.start + int(np.argmax(acc_norm[win]))
        lags_ms.append((shank.block.t_s[k] - ic) * 1000)
        # Bach's shank sensor reads 11-13 g at a jog (99.9th percentile) before it saturates.
        assert 3.5 <= acc_norm[k] <= 17.0
    lags = np.array(lags_ms)
    # Per-athlete lag, ±3 ms per step, and up to one sample of quantisation.
    error_ms = lags - shank.profile.shank_impact_lag_ms
    assert np.all(np.abs(error_ms) <= 3.0 + DT_MS)
    assert abs(np.mean(error_ms)) < 1.5
    assert 25.0 <= np.median(lags) <= 35.0


def test_shank_long_axis_stance_plateau_and_toe_off_minimum(shank: Session) -> None:
    long_g = _long_axis(shank.block)
    for ic, to in shank.own_contacts():
        stance = long_g[shank.window(ic + 0.06, to - 0.03)]
        assert 0.9 <= np.median(stance) <= 4.2  # loading: a real shank reads 2-3 g at a jog
        win = shank.window(to - 0.04, to + 0.06)
        k = win.start + int(np.argmin(long_g[win]))
        offset_ms = (shank.block.t_s[k] - to) * 1000
        # Per-athlete offset, ±5 ms per step, quantisation and the swing's onset on the axis.
        assert abs(offset_ms - shank.profile.shank_to_offset_ms) <= 10.0
        assert -0.95 <= long_g[k] <= -0.15


def test_shank_mid_swing_hump(shank: Session) -> None:
    long_g = _long_axis(shank.block)
    contacts = shank.own_contacts()
    for (_, to), (ic2, _) in itertools.pairwise(contacts):
        hump = long_g[shank.window(to + 0.3 * (ic2 - to), to + 0.8 * (ic2 - to))].max()
        assert 1.5 <= hump <= 4.8  # ±15 % from stride to stride


def test_trunk_vertical_is_ground_reaction_force(trunk: Session) -> None:
    vertical = trunk.block.acc_g[:, 2]
    steps = trunk.truth.contacts_s[3:-3]
    for (ic, to, _), (ic2, _, _) in itertools.pairwise(steps):
        assert vertical[trunk.index((to + ic2) / 2)] < 0.2  # free fall in mid-flight
        assert vertical[trunk.index((ic + to) / 2)] > 1.0  # above body weight in mid-stance
    # Impulse balance: vertical force averages one body weight.
    assert vertical.mean() == pytest.approx(1.0, abs=0.02)


def test_trunk_sees_both_legs_braking_and_sway(trunk: Session) -> None:
    ap, ml = trunk.block.acc_g[:, 0], trunk.block.acc_g[:, 1]
    for ic, to, leg in trunk.truth.contacts_s[3:-3]:
        gct = to - ic
        assert ap[trunk.window(ic, ic + 0.5 * gct)].min() <= -0.4  # braking after IC
        assert ap[trunk.window(ic + 0.5 * gct, to)].max() >= 0.3  # propulsion before TO
        sway = ml[trunk.window(ic + 0.3 * gct, to - 0.3 * gct)].mean()
        assert (sway < -0.1) if leg == "left" else (sway > 0.1)


def test_stride_pace_hits_harder(shank: Session) -> None:
    acc_norm = _norm(shank.block.acc_g)
    easy: list[float] = []
    fast: list[float] = []
    for ic, _ in shank.own_contacts():
        peak = acc_norm[shank.window(ic, ic + 0.08)].max()
        (fast if shank.in_rep(ic) else easy if shank.easy(ic) else []).append(peak)
    assert np.median(fast) > 1.3 * np.median(easy)


def test_trunk_peak_follows_the_impulse_balance(trunk: Session) -> None:
    """The active peak is pi/2 x (step period - the impulse of the heel-strike shock) / contact
    time: higher at stride pace."""
    vertical = trunk.block.acc_g[:, 2]
    steps = trunk.truth.contacts_s[3:-3]
    ratios: list[float] = []
    easy: list[float] = []
    fast: list[float] = []
    p = trunk.profile
    for (ic, to, _), (ic2, _, _) in itertools.pairwise(steps):
        # The active peak lies past the shock (an 8 ms pulse) and the impact transient.
        peak = vertical[trunk.window(ic + 0.4 * (to - ic), to + 0.02)].max()
        x = float(np.clip(p.intensity(np.array([60.0 / (ic2 - ic)]))[0], 0.0, 1.0))
        shock_impulse = p.trunk_shock_g * 0.008 * np.e
        impact_impulse = p.trunk_impact_g * (0.7 + 0.6 * x) * p.trunk_impact_ms / 2000
        active = ic2 - ic - shock_impulse - impact_impulse
        ratios.append(peak / (np.pi * active / (2 * (to - ic))))
        (fast if trunk.in_rep(ic) else easy if trunk.easy(ic) else []).append(peak)
    # The soft-tissue low-pass shaves a few percent off the peak; the belt's ringing rides on it.
    assert 0.92 <= np.median(ratios) <= 1.06
    assert np.percentile(ratios, 5) > 0.82 and np.percentile(ratios, 95) < 1.2
    assert np.median(fast) > np.median(easy)


def test_no_two_steps_are_identical(trunk: Session) -> None:
    vertical = trunk.block.acc_g[:, 2]
    peaks = [vertical[trunk.window(ic, to)].max() for ic, to, _ in trunk.truth.contacts_s[3:40]]
    assert len(set(np.round(peaks, 6))) == len(peaks)


def test_trunk_impact_lobe_is_the_low_passed_raised_cosine() -> None:
    # The closed form against a fine-step (Euler) integration of tau y' + y = x.
    from scipy.signal import lfilter

    from firmware_sim.signals import _lowpassed_lobe

    width_s, tau_s, dt = 0.055, 0.010, 1e-6
    u = np.arange(-0.01, 0.2, dt)
    x = np.where((u >= 0) & (u <= width_s), 0.5 * (1 - np.cos(2 * np.pi * u / width_s)), 0.0)
    a = dt / tau_s
    y = lfilter([0.0, a], [1.0, a - 1.0], x)
    np.testing.assert_allclose(_lowpassed_lobe(u, width_s, tau_s), y, atol=2e-4)
