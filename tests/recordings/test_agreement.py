"""Agreement figures for recordings without contact truth: a simulated shoe and hip worn at once
(against the simulator's true cadence and activity), the real outdoor run, and `eval --json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from dsp.events import Placement
from dsp.plan import SessionPlan
from firmware_sim.runner import SimulatedAthlete, Truth
from recordings.agreement import (
    WINDOW_S,
    agreement_report,
    periodicity_reference,
    recording_id,
    sensor_windows,
)
from recordings.evaluate import run_trial
from recordings.trials import Trial, find_trials
from stridecue.cli import app

PLAN = SessionPlan("nrr", warmup_s=100.0, reps=3, rep_s=30.0, min_recovery_s=70.0, cooldown_s=60.0)
FS_HZ = 100.0
FIGURES = ("running_within_3_spm", "walking_within_5_spm", "still_no_cadence")


def write_pair(directory: Path, recording: str, seed: int, recovery: str) -> Truth:
    """One simulated runner wearing a shoe clip (no gyroscope) and a hip belt at once, written as
    two CSV + JSON trials without contact truth (like ``../shared/data/real-runs``)."""
    truth = None
    for placement, site in ((Placement.FOOT, "ankle"), (Placement.TRUNK, "hip")):
        athlete = SimulatedAthlete(PLAN, placement, seed=seed, fs_hz=FS_HZ, recovery=recovery)
        block = athlete.read(1e9)
        stem = directory / f"{recording}_{site}"
        data = np.column_stack([block.t_s, block.acc_g])
        header = "t_s,acc_x_g,acc_y_g,acc_z_g"
        csv = stem.with_suffix(".csv")
        np.savetxt(csv, data, fmt="%.6f", delimiter=",", header=header, comments="")
        meta = {
            "dataset": "simulated-pair",
            "activity": f"nrr-{recovery}",
            "placement": placement.value,
            "sample_rate_hz": FS_HZ,
            "contacts_s": [],
        }
        stem.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
        truth = athlete.truth() if placement is Placement.TRUNK else truth
    assert truth is not None
    return truth  # the trunk's: every step of both feet


def true_windows(truth: Truth, n_windows: int) -> list[tuple[str | None, float | None]]:
    """Per window: the true activity if one activity and one pace hold throughout (else None),
    and the true cadence (steps/min, both feet) from the exact contacts in it."""
    ics = np.array([c[0] for c in truth.contacts_s])
    changes = np.array([t for rep in truth.reps_s for t in rep])
    out: list[tuple[str | None, float | None]] = []
    for k in range(n_windows):
        start, end = k * WINDOW_S, (k + 1) * WINDOW_S
        spans = [a for s, e, a in truth.activity_s if s < end and e > start]
        # A pace change settles over a few seconds (the runner's transition).
        steady = len(spans) == 1 and not np.any((changes > start - 5.0) & (changes < end))
        ic = ics[(ics > start) & (ics <= end)]
        cadence = 60.0 * (len(ic) - 1) / (ic[-1] - ic[0]) if len(ic) > 4 else None
        out.append((spans[0] if steady else None, cadence))
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Truth]]:
    directory = tmp_path_factory.mktemp("pairs")
    truths = {
        "walked": write_pair(directory, "walked", seed=4, recovery="walk"),
        "stood": write_pair(directory, "stood", seed=3, recovery="stand"),
    }
    return directory, truths


@pytest.fixture(scope="module")
def pair_report(pairs: tuple[Path, dict[str, Truth]]) -> dict[str, Any]:
    directory, _ = pairs
    trials = find_trials([directory])
    return agreement_report([sensor_windows(t, run_trial(t)) for t in trials])


def test_sensors_worn_at_once_are_grouped_by_recording(pair_report: dict[str, Any]) -> None:
    recordings = pair_report["recordings"]
    assert set(recordings) == {"simulated-pair/walked", "simulated-pair/stood"}
    for name, rec in recordings.items():
        stem = name.split("/")[1]
        assert rec["reference"] == f"{name}_ankle"  # the shoe (one leg) is the reference
        assert list(rec["sensors"]) == [f"{name}_ankle", f"{name}_hip"]
        assert [p["sensors"] for p in rec["pairs"]] == [[f"{name}_ankle", f"{name}_hip"]]
        assert rec["activity"] == f"nrr-{'walk' if stem == 'walked' else 'stand'}"


def test_windows_follow_the_simulated_activity_and_cadence(
    pairs: tuple[Path, dict[str, Truth]], pair_report: dict[str, Any]
) -> None:
    _, truths = pairs
    checked = {"running": 0, "walking": 0, "still": 0}
    for stem, truth in truths.items():
        rec = pair_report["recordings"][f"simulated-pair/{stem}"]
        windows = rec["per_window"]
        for w, (activity, cadence) in zip(windows, true_windows(truth, len(windows)), strict=True):
            if activity is None:
                continue  # two activities or two paces in one window: no single truth
            checked[activity] += 1
            assert w["activity"] == activity, (stem, w)
            if activity == "still":
                assert all(v is None for v in w["published_spm"].values()), (stem, w)
                continue
            assert cadence is not None
            assert abs(w["reference_spm"] - cadence) <= 1.5, (stem, w, cadence)
            tolerance = 3.0 if activity == "running" else 5.0
            for published in w["published_spm"].values():
                assert published is not None and abs(published - cadence) <= tolerance, (stem, w)
    assert checked["running"] >= 40 and checked["walking"] >= 8 and checked["still"] >= 8


def test_agreement_figures_on_the_simulated_pairs(pair_report: dict[str, Any]) -> None:
    pooled = pair_report["placements"]
    for placement in ("foot", "trunk"):
        figures = {k: v for k, v in pooled.items() if k.endswith(f"/{placement}")}
        assert len(figures) == 2  # one per recording activity
    # Every figure is counted over the windows the reference classed. Measured (seeds 3 and 4):
    # running 27-30 of 31-32 windows per sensor (84-94 %), walking 12 of 13 (92 %), still 9-10 of
    # 10 (the shoe's one miss is the first still window, whose first seconds still carry the
    # cadence of the jog before); the misses are windows that hold two paces or two activities.
    for name, rec in pair_report["recordings"].items():
        n = rec["windows"]
        for figures in rec["sensors"].values():
            assert figures["running_within_3_spm"]["of"] == n["running"]
            assert figures["walking_within_5_spm"]["of"] == n["walking"]
            assert figures["still_no_cadence"]["of"] == n["still"]
            assert figures["running_within_3_spm"]["share"] >= 0.8, (name, figures)
            if n["walking"] >= 5:
                assert figures["walking_within_5_spm"]["share"] >= 0.85, (name, figures)
            if n["still"]:
                assert figures["still_no_cadence"]["share"] >= 0.9, (name, figures)
        assert rec["pairs"][0]["running_within_3_spm"]["share"] >= 0.8


def test_the_offline_reference_on_a_pure_stride() -> None:
    t = np.arange(0.0, 10.0, 1.0 / FS_HZ)
    stride_s = 0.75  # 160 steps/min
    one_leg = 1.0 + np.maximum(0.0, np.sin(2 * np.pi * t / stride_s)) ** 8 * 3.0
    cadence, std = periodicity_reference(t, one_leg, FS_HZ, 0.0, one_leg=True)
    assert cadence == pytest.approx(160.0, abs=0.5)
    assert std > 0.5
    # A trunk with two identical steps per stride of a walk (110 steps/min): the shortest strong
    # lag is the step, 0.545 s, and nothing lies at half of it: the stride is twice it.
    step_s = 60.0 / 110.0
    trunk = 1.0 + 0.5 * np.sin(2 * np.pi * t / step_s)
    cadence, _ = periodicity_reference(t, trunk, FS_HZ, 0.0, one_leg=False)
    assert cadence == pytest.approx(110.0, abs=0.5)
    still = 1.0 + 0.01 * np.random.default_rng(0).normal(size=len(t))
    assert periodicity_reference(t, still, FS_HZ, 0.0, one_leg=True)[0] is None


def test_recording_id_from_the_name_or_the_truth(tmp_path: Path) -> None:
    truth = {"dataset": "d", "activity": "a", "placement": "foot", "sample_rate_hz": 100.0}
    trial = Trial("d/run_part1_left_ankle", {**truth, "contacts_s": []}, tmp_path / "x.csv")
    assert recording_id(Trial(trial.name, trial.truth, tmp_path / "run_part1_left_ankle.csv")) == (
        "run_part1_left"
    )
    explicit = {**truth, "contacts_s": [], "recording": "morning"}
    assert recording_id(Trial("d/a_b", explicit, tmp_path / "a_b.csv")) == "morning"


# --- the real outdoor run --------------------------------------------------------------------


@pytest.mark.shared
def test_real_run_shoe_and_hip_agreement(shared_dir: Path) -> None:
    folder = shared_dir / "data" / "real-runs" / "adept2018"
    if not folder.is_dir():
        pytest.skip("../shared/data/real-runs lacks adept2018")
    trials = find_trials([folder])
    doc = agreement_report([sensor_windows(t, run_trial(t)) for t in trials])
    rec = doc["recordings"]["adept2018/run_part1_left"]
    assert rec["windows"] == {"running": 52, "walking": 1, "still": 7}
    shoe = rec["sensors"]["adept2018/run_part1_left_ankle"]
    hip = rec["sensors"]["adept2018/run_part1_left_hip"]
    # Measured on this engine: within 3 spm of the shoe's periodicity in 47 of 52 running windows
    # for the shoe (90 %), 49 of 52 for the hip (94 %); shoe and hip within 3 spm of each other in
    # 51 of 52. The misses are the windows where the runner stops, restarts or changes pace
    # (290 s, 310 s, 480 s, 510 s), which a causal estimate sees seconds late. The one walking
    # window (300-310 s: a stop and a few steps) gets no trusted cadence from either sensor; the 7
    # still windows get none either. The floors leave a window or two of room for engine changes.
    assert shoe["running_within_3_spm"]["share"] >= 0.88
    assert hip["running_within_3_spm"]["share"] >= 0.92
    assert rec["pairs"][0]["running_within_3_spm"]["share"] >= 0.9
    assert shoe["still_no_cadence"]["agree"] == hip["still_no_cadence"]["agree"] == 7


# --- the command -------------------------------------------------------------------------------


def test_eval_json_of_recordings_without_contact_truth(
    pairs: tuple[Path, dict[str, Truth]], tmp_path: Path
) -> None:
    directory, _ = pairs
    result = CliRunner().invoke(app, ["eval", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # No contact truth: no contact figures, only agreement.
    assert doc["trials"] == doc["datasets"] == doc["placements"] == {}
    agreement = doc["agreement"]
    assert agreement["window_s"] == WINDOW_S
    assert set(agreement["targets"]) == set(FIGURES)
    rec = agreement["recordings"]["simulated-pair/stood"]
    assert set(rec) == {
        "activity",
        "dataset",
        "reference",
        "windows",
        "sensors",
        "pairs",
        "per_window",
    }
    for figures in rec["sensors"].values():
        for key in (*FIGURES, "own_running_within_3_spm", "own_walking_within_5_spm"):
            assert set(figures[key]) == {"agree", "of", "share"}
    window = rec["per_window"][0]
    assert set(window) == {
        "start_s",
        "activity",
        "reference_spm",
        "published_spm",
        "periodicity_spm",
    }
    text = CliRunner().invoke(app, ["eval", str(directory)], env={"COLUMNS": "80"})
    assert text.exit_code == 0, text.output
    assert "agreement · simulated-pair/stood" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80


@pytest.mark.shared
def test_eval_of_force_plate_and_real_run_folders_at_once(shared_dir: Path) -> None:
    truth = shared_dir / "data" / "running-truth"
    real = shared_dir / "data" / "real-runs"
    if not truth.is_dir() or not real.is_dir():
        pytest.skip("../shared lacks running-truth or real-runs")
    alone = CliRunner().invoke(app, ["eval", str(truth), "--json"])
    both = CliRunner().invoke(app, ["eval", str(truth), str(real), "--json"])
    assert alone.exit_code == both.exit_code == 0, both.output
    alone_doc, both_doc = json.loads(alone.stdout), json.loads(both.stdout)
    # Recordings with contact truth keep their figures exactly; the real run adds agreement only.
    assert "agreement" not in alone_doc
    assert {k: v for k, v in both_doc.items() if k != "agreement"} == alone_doc
    assert list(both_doc["agreement"]["recordings"]) == ["adept2018/run_part1_left"]
