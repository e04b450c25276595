"""End to end through unmodified bleak: the simulated footpod of every profile → emulated BlueZ →
``BleSource`` → the engine, closed loop on its cues, recorded to a ``.log``.

Each session is checked twice: the live events equal (``==``) those of replaying the recording
through ``RecordedSource``, and they are accurate against the athlete's ground truth. The
footpod runs ``SPEED`` times faster than real time, so the host clock is scaled alike.

Host and sensor clocks differ by one constant for a whole session (the moment the link opened):
the truth is shifted by the single offset that lines up the most contacts, then scored with
``recordings.evaluate.score_contacts`` (60 ms matching window). One constant cannot hide jitter,
drift or lost samples anywhere in the session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from device.drivers import Driver, PolarPmdDriver, RawImuDriver, RscDriver, WitMotionDriver
from device.link import LinkConfig, RawNotification
from device.profiles.rsc import CadenceUnit
from device.source import BleSource
from dsp.events import Cue, CueKind, Event, Gap, Metrics, Placement, RepSummary, StepEvent
from dsp.plan import template
from firmware_sim.bluez.testing import emulated_bluez
from firmware_sim.footpod import SimulatedFootpod
from firmware_sim.runner import SimulatedAthlete
from recordings.evaluate import score_contacts
from recordings.logfile import LogHeader, LogWriter, Notification, utc_now
from recordings.runner import build_engine, run_session
from recordings.sources import RecordedSource

pytestmark = pytest.mark.ble

SPEED = 10.0
NAME = "Stridecue Footpod"
PLAN = template("nrr").with_overrides(
    warmup_s=40.0, reps=2, rep_s=15.0, min_recovery_s=30.0, cooldown_s=15.0, baseline_hold_s=10.0
)
# link settings in (accelerated) stream seconds
LINK = LinkConfig(silent_s=20.0, scan_timeout_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.2)
PLACEMENTS = {
    "raw-imu": Placement.FOOT,
    "polar-pmd": Placement.TRUNK,
    "witmotion": Placement.FOOT,
    "rsc": Placement.FOOT,
}


def make_driver(profile: str) -> Driver:
    if profile == "raw-imu":
        return RawImuDriver()
    if profile == "polar-pmd":
        return PolarPmdDriver()
    if profile == "witmotion":
        return WitMotionDriver(200)
    return RscDriver(CadenceUnit.AUTO)


@dataclass
class Session:
    events: list[Event]
    log_path: Path
    athlete: SimulatedAthlete
    counters: dict[str, int]

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def cues(self, kind: CueKind) -> list[Cue]:
        return [c for c in self.of(Cue) if c.kind is kind]


def live(
    profile: str,
    tmp_path: Path,
    *,
    on_cue: Callable[[Cue, SimulatedFootpod], None] | None = None,
    on_metrics: Callable[[Metrics, SimulatedFootpod], None] | None = None,
) -> Session:
    placement = PLACEMENTS[profile]
    athlete = SimulatedAthlete(PLAN, placement, seed=3, closed_loop=True)
    pod = SimulatedFootpod(athlete, profile, name=NAME, speed=SPEED)
    driver = make_driver(profile)
    events: list[Event] = []
    log_path = tmp_path / f"{profile}.log"
    writer: list[LogWriter] = []

    def record(n: RawNotification) -> None:
        writer[0].write(Notification(n.host_t_s, n.characteristic, n.data))

    def cue(c: Cue) -> None:
        pod.on_cue(c)
        if on_cue is not None:
            on_cue(c, pod)

    def sink(batch: Sequence[Event]) -> None:
        events.extend(batch)
        for e in batch:
            if isinstance(e, Metrics) and on_metrics is not None:
                on_metrics(e, pod)

    source = BleSource(
        NAME,
        driver,
        placement=placement,
        link_config=LINK,
        recorder=record,
        on_cue=cue,
        clock=lambda: SPEED * time.monotonic(),
    )

    async def scenario() -> dict[str, int]:
        async with emulated_bluez(pod.peripheral), asyncio.TaskGroup() as tasks:
            serving = tasks.create_task(pod.serve(), name="footpod")
            async with source:
                header = LogHeader(
                    NAME, placement.value, source.fs_hz or 1.0, utc_now(), extra=driver.log_extra()
                )
                with LogWriter(log_path, header) as w:
                    writer.append(w)
                    await run_session(source, build_engine(source, PLAN), [sink])
                counters = source.counters()
            await pod.peripheral.wait_disconnected()
            serving.cancel()
        return counters

    counters = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    return Session(events, log_path, athlete, counters)


def replay(path: Path) -> list[Event]:
    source = RecordedSource.open(path)
    events: list[Event] = []
    asyncio.run(run_session(source, build_engine(source, PLAN), [events.extend]))
    return events


def align(det_s: np.ndarray, true_s: np.ndarray, tol_s: float = 0.03) -> float:
    """The constant added to ``true_s`` that puts the most of them within ``tol_s`` of a
    detection (every detection-truth pair proposes one; the best is refined by the median)."""
    true_s = np.sort(true_s)
    candidates = (det_s[:, None] - true_s[None, :]).ravel()

    def matched(offset: float) -> np.ndarray:
        shifted = true_s + offset
        i = np.clip(np.searchsorted(shifted, det_s), 1, len(shifted) - 1)
        nearest = np.minimum(np.abs(shifted[i] - det_s), np.abs(shifted[i - 1] - det_s))
        return nearest < tol_s

    counts = [matched(c).sum() for c in candidates[:: max(1, len(candidates) // 4000)]]
    best = float(candidates[:: max(1, len(candidates) // 4000)][int(np.argmax(counts))])
    shifted = true_s + best
    i = np.clip(np.searchsorted(shifted, det_s), 1, len(shifted) - 1)
    nearer = np.where(
        np.abs(shifted[i] - det_s) < np.abs(shifted[i - 1] - det_s), shifted[i], shifted[i - 1]
    )
    ok = matched(best)
    return best + float(np.median(det_s[ok] - nearer[ok]))


def contact_recall(session: Session) -> float:
    """Fraction of the true contacts (inside the streamed span, outside gaps) matched ≤ 60 ms."""
    truth = session.athlete.truth()
    steps = session.of(StepEvent)
    one_leg = truth.placement.one_leg
    contacts = np.array(
        [(ic, to) for ic, to, leg in truth.contacts_s if leg == truth.sensor_leg or not one_leg]
    )
    det = np.array([s.ic_s for s in steps])
    offset = align(det, contacts[:, 0])
    shifted = contacts + offset
    first = min(s.ic_s for s in steps) - 0.5
    shifted = shifted[shifted[:, 0] >= first]
    score = score_contacts(
        steps,
        shifted,
        one_leg=one_leg,
        t_end_s=max(s.emitted_s for s in steps),
        gaps=session.of(Gap),
        sensor_leg=truth.sensor_leg,
    )
    assert score.n_contacts > 100
    return score.matched / score.n_contacts


@pytest.mark.parametrize("profile", ["raw-imu", "polar-pmd", "witmotion", "rsc"])
def test_live_equals_replay_and_matches_truth(profile: str, tmp_path: Path) -> None:
    session = live(profile, tmp_path)
    # the closed loop ran the whole plan over BLE
    assert len(session.cues(CueKind.GO)) == PLAN.reps
    assert len(session.of(RepSummary)) == PLAN.reps
    assert session.cues(CueKind.SESSION_DONE)
    assert session.counters["malformed"] == 0 and session.counters["dropped"] == 0
    assert replay(session.log_path) == session.events

    if profile == "rsc":
        assert_cadence_matches_truth(session)
    elif profile == "witmotion":
        # No timestamp in the packets: samples are stamped on the host, and at this test's 10×
        # compression every millisecond of host latency jitter is 10 ms of stream time.
        assert contact_recall(session) >= 0.98
    else:
        assert contact_recall(session) >= 0.99


def assert_cadence_matches_truth(session: Session) -> None:
    """Per-second cadence within 3 spm of the truth wherever the true cadence is steady."""
    ics = np.sort([ic for ic, _, _ in session.athlete.truth().contacts_s])

    def true_spm(t0: float, t1: float) -> float:
        inside = ics[(ics >= t0) & (ics < t1)]
        if inside.size < 4:
            return float("nan")  # before the run, or after it: never "steady"
        return 60.0 * (inside.size - 1) / float(inside[-1] - inside[0])

    metrics = [m for m in session.of(Metrics) if m.cadence_spm is not None]
    assert len(metrics) > 60
    # Coarse alignment (the first reading is about one measurement window in), which only
    # matters where the cadence changes: those seconds are left out below.
    offset = metrics[0].t_s - ics[0]
    errors = []
    for m in metrics:
        t = m.t_s - offset
        now = true_spm(t - 6.0, t)
        around = [true_spm(t - 12.0, t - 6.0), true_spm(t, t + 6.0)]
        if all(abs(now - x) < 2.0 for x in around):
            errors.append(float(m.cadence_spm or 0.0) - now)
    assert len(errors) > 40
    assert np.max(np.abs(errors)) <= 3.0


def test_link_loss_mid_rep_reconnects_and_reports_the_gap(tmp_path: Path) -> None:
    dropped: list[float] = []

    def on_cue(cue: Cue, pod: SimulatedFootpod) -> None:
        if cue.kind is CueKind.GO and not dropped:
            dropped.append(cue.t_s)
            asyncio.get_running_loop().create_task(pod.drop_link())

    session = live("raw-imu", tmp_path, on_cue=on_cue)
    assert session.counters["connects"] == 2 and session.counters["losses"] == 1
    (gap,) = [g for g in session.of(Gap) if g.end_s - g.start_s > 0.1]
    assert dropped[0] <= gap.end_s and gap.start_s <= dropped[0] + 5.0
    assert gap.lost_samples > 0
    # the session went on: every rep cued and found, the later one after the gap
    assert len(session.cues(CueKind.GO)) == PLAN.reps
    reps = session.of(RepSummary)
    assert len(reps) == PLAN.reps and reps[-1].start_s > gap.end_s
    assert replay(session.log_path) == session.events
    assert contact_recall(session) >= 0.99


def test_lost_and_malformed_notifications_are_counted_and_skipped(tmp_path: Path) -> None:
    done: set[str] = set()

    def on_metrics(m: Metrics, pod: SimulatedFootpod) -> None:
        if m.t_s > session_start[0] + 10 and "skip" not in done:
            done.add("skip")
            pod.skip_next(3)
        if m.t_s > session_start[0] + 20 and "corrupt" not in done:
            done.add("corrupt")
            pod.corrupt_next(3)

    session_start: list[float] = []

    def first(m: Metrics, pod: SimulatedFootpod) -> None:
        if not session_start:
            session_start.append(m.t_s)
        on_metrics(m, pod)

    session = live("raw-imu", tmp_path, on_metrics=first)
    c = session.counters
    # the skipped packets, and the damaged ones whose samples never arrived: seen from seq numbers
    assert c["lost_packets"] == 3 + 3
    assert c["malformed"] == 3
    assert c["connects"] == 1
    gaps = [g for g in session.of(Gap) if g.lost_samples > 0]
    assert len(gaps) >= 1
    # The engine sizes a gap from the mapped timestamps. Every lost sample is inside a reported
    # gap; on a busy machine a 10×-compressed real-time link can only make a hole look WIDER in
    # stream time (late packets), never hide one: the exact count is the lower bound (less a
    # sample of rounding at each edge).
    assert sum(g.lost_samples for g in gaps) >= c["lost_samples"] - 2 * len(gaps)
    assert len(session.of(RepSummary)) == PLAN.reps
    assert replay(session.log_path) == session.events
    # Contact accuracy is the main e2e test's subject; here every hole re-anchors the clock
    # mapping, which at 10x compression on a loaded machine shifts contacts by tens of ms.
