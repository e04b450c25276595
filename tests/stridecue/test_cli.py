"""The `stridecue` command end to end: simulate, replay, eval, sim-run, bench and bad input."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from dsp.events import StepEvent
from dsp.samples import SampleBlock
from recordings.evaluate import score_contacts
from recordings.logfile import SYNC, LogReader
from recordings.trials import find_trials
from stridecue.cli import app

REPS, REP_S = 3, 25.0
SHORT_PLAN = ["--warmup-s", "120", "--reps", str(REPS), "--rep-s", str(REP_S)]
SHORT_PLAN += ["--recovery-s", "60", "--cooldown-s", "40"]
EVENT_TYPES = {"step", "metrics", "gap", "cue", "rep"}
DATASET_FIGURES = {
    "recall",
    "precision",
    "gct_mae_ms",
    "gct_bias_ms",
    "ic_bias_ms",
    "cadence_mae_spm",
    "n_contacts",
    "reps_found",
    "reps_true",
    "false_reps",
    "rep_start_err_s",
    "rep_end_err_s",
}


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def said(result: Result) -> str:
    """What the command told the user on stderr, without rich's boxes and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())


def _reject_constant(name: str) -> Any:
    raise AssertionError(f"not strict JSON: {name}")


def json_lines(result: Result) -> list[dict[str, Any]]:
    """One strict JSON object per stdout line."""
    assert result.exit_code == 0, result.output
    docs = [
        json.loads(line, parse_constant=_reject_constant) for line in result.stdout.splitlines()
    ]
    assert all(isinstance(d, dict) for d in docs)
    return docs


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def cue_kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in of_type(events, "cue")]


def sample_end_s(log: Path) -> float:
    return max(float(r.t_s[-1]) for r in LogReader(log) if isinstance(r, SampleBlock) and len(r))


def fraction_matched(ics_s: np.ndarray, against_s: np.ndarray, tol_s: float = 0.060) -> float:
    """The fraction of ``ics_s`` with an element of sorted ``against_s`` within ``tol_s``."""
    k = np.clip(np.searchsorted(against_s, ics_s), 1, len(against_s) - 1)
    nearest = np.minimum(np.abs(against_s[k - 1] - ics_s), np.abs(against_s[k] - ics_s))
    return float(np.mean(nearest <= tol_s))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("cli") / "run.log"
    result = invoke("simulate", "-o", log, *SHORT_PLAN)
    assert result.exit_code == 0, result.output
    return log


@pytest.fixture(scope="module")
def truth(simulated: Path) -> dict[str, Any]:
    return json.loads(simulated.with_suffix(".truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replayed(simulated: Path) -> list[dict[str, Any]]:
    return json_lines(invoke("replay", simulated, "--json"))


# --- simulate ------------------------------------------------------------------------------------


def check_truth(truth: dict[str, Any], activity: str, placement: str, rate_hz: float) -> None:
    assert truth["dataset"] == "simulated"
    assert truth["activity"] == activity
    assert truth["placement"] == placement
    assert truth["sample_rate_hz"] == rate_hz
    contacts = np.array(truth["contacts_s"])
    assert contacts.ndim == 2 and contacts.shape[1] == 2 and len(contacts) > 300
    assert np.all(contacts[:, 1] > contacts[:, 0])
    assert np.all(np.diff(contacts[:, 0]) > 0)
    reps = np.array(truth["reps_s"])
    assert reps.shape == (REPS, 2)
    np.testing.assert_allclose(reps[:, 1] - reps[:, 0], REP_S, atol=0.01)  # open loop: the plan


def test_simulate_writes_the_log_and_its_truth(simulated: Path, truth: dict[str, Any]) -> None:
    assert simulated.with_suffix(".truth.json").is_file()
    check_truth(truth, "nrr", "foot", 200.0)
    reader = LogReader(simulated)
    assert reader.header.placement == "foot"
    assert reader.header.sample_rate_hz == 200.0
    assert reader.header.extra["template"] == "nrr"
    samples = sum(len(r) for r in reader if isinstance(r, SampleBlock))
    assert samples == pytest.approx(200.0 * sample_end_s(simulated), abs=2)


def test_simulate_follows_template_placement_and_rate(tmp_path: Path) -> None:
    log = tmp_path / "bursts.log"
    args = ["--template", "bursts", "--placement", "trunk", "--rate-hz", "100"]
    result = invoke("simulate", "-o", log, *args, *SHORT_PLAN)
    assert result.exit_code == 0, result.output
    assert f"{REPS} reps" in said(result)
    check_truth(json.loads(log.with_suffix(".truth.json").read_text()), "bursts", "trunk", 100.0)
    assert LogReader(log).header.sample_rate_hz == 100.0


@pytest.mark.parametrize(("recovery", "activity"), [("walk", "walking"), ("stand", "still")])
def test_simulate_walked_or_stood_recoveries(tmp_path: Path, recovery: str, activity: str) -> None:
    log = tmp_path / "run.log"
    result = invoke("simulate", "-o", log, "--recovery", recovery, "--surges", "1", *SHORT_PLAN)
    assert result.exit_code == 0, result.output
    truth = json.loads(log.with_suffix(".truth.json").read_text())
    spans = {a for _, _, a in truth["activity_s"]}
    assert activity in spans  # a stop is walked into and out of
    assert spans == {"running", "walking", activity}
    assert len(truth["surges_s"]) == 1


def test_simulate_refuses_an_unknown_recovery(tmp_path: Path) -> None:
    result = invoke("simulate", "-o", tmp_path / "x.log", "--recovery", "crawl")
    assert result.exit_code != 0
    assert "recovery must be one of jog, walk, stand" in said(result)


# --- replay --------------------------------------------------------------------------------------


def test_replay_prints_one_json_event_per_line(replayed: list[dict[str, Any]]) -> None:
    types = {e["type"] for e in replayed}
    assert types <= EVENT_TYPES
    assert {"step", "metrics", "cue", "rep"} <= types
    seconds = [e["t_s"] for e in of_type(replayed, "metrics")]
    assert seconds[0] == 1.0
    assert seconds == [float(s) for s in range(1, len(seconds) + 1)]


def test_replay_finds_every_true_rep_in_auto_mode(
    replayed: list[dict[str, Any]], truth: dict[str, Any]
) -> None:
    kinds = cue_kinds(replayed)
    assert kinds.count("rep_start") == kinds.count("rep_end") == len(truth["reps_s"]) == REPS
    assert kinds[-1] == "session_done"
    summaries = of_type(replayed, "rep")
    assert [s["rep"] for s in summaries] == list(range(1, REPS + 1))
    found = np.array([[s["start_s"], s["end_s"]] for s in summaries])
    np.testing.assert_allclose(found, np.array(truth["reps_s"]), atol=1.0)


def test_replay_steps_match_the_true_contacts(
    replayed: list[dict[str, Any]], truth: dict[str, Any], simulated: Path
) -> None:
    detected = np.array([s["ic_s"] for s in of_type(replayed, "step")])
    contacts = np.array(truth["contacts_s"])
    # After the first second, and before the detector's latency bound at the end.
    scored = contacts[(contacts[:, 0] >= 1.0) & (contacts[:, 1] <= sample_end_s(simulated) - 0.15)]
    assert fraction_matched(scored[:, 0], detected) >= 0.99  # recall
    assert fraction_matched(detected[detected >= 1.0], contacts[:, 0]) >= 0.99  # precision


def test_replay_cued_mode_cues_the_template(tmp_path: Path) -> None:
    # The nrr template warms up for 600 s: the recording must be longer than that.
    log = tmp_path / "long.log"
    plan = ["--warmup-s", "610", "--reps", "1", "--rep-s", "20", "--cooldown-s", "20"]
    assert invoke("simulate", "-o", log, *plan).exit_code == 0
    events = json_lines(invoke("replay", log, "--template", "nrr", "--json"))
    cues = of_type(events, "cue")
    assert [c["kind"] for c in cues[:5]] == [
        "get_ready",
        "countdown",
        "countdown",
        "countdown",
        "go",
    ]
    assert [c["t_s"] for c in cues[:5]] == [600.0, 602.0, 603.0, 604.0, 605.0]
    assert [c["text"] for c in cues[1:4]] == ["3", "2", "1"]
    assert "Rep 1 of 8" in cues[0]["text"] and "Rep 1 of 8" in cues[4]["text"]
    # The recorded runner (open loop) starts at 610 s: the engine finds that start.
    true_start_s = json.loads(log.with_suffix(".truth.json").read_text())["reps_s"][0][0]
    (start,) = [c for c in cues if c["kind"] == "rep_start"]
    assert start["at_s"] == pytest.approx(true_start_s, abs=1.0)


@pytest.mark.shared
def test_replay_streams_a_running_truth_csv(running_truth: Path) -> None:
    csv = running_truth / "bach2022" / "trial01_running.csv"
    events = json_lines(invoke("replay", csv, "--json"))
    (trial,) = find_trials([csv])
    steps = of_type(events, "step")
    assert steps and all(s["foot"] == "left" for s in steps)
    score = score_contacts(
        [StepEvent(**{k: v for k, v in s.items() if k != "type"}) for s in steps],
        trial.contacts_s,
        one_leg=True,
        t_end_s=float(trial.samples().t_s[-1]),
    )
    assert score.n_contacts >= 10
    assert score.matched / score.n_contacts >= 0.95
    assert score.matched / score.n_detected >= 0.95


def test_replay_of_a_truncated_log_keeps_everything_before_the_cut(
    simulated: Path,
    replayed: list[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = simulated.read_bytes()
    last = data.rfind(SYNC)
    cut = tmp_path / "cut.log"
    cut.write_bytes(data[: last + (len(data) - last) // 2])  # a recorder killed mid-write
    with caplog.at_level(logging.WARNING, logger="recordings.logfile"):
        result = invoke("replay", cut, "--json")
    events = json_lines(result)
    assert "cut short" in caplog.text
    end_s = sample_end_s(cut)
    assert end_s < sample_end_s(simulated) - 0.5
    steps = of_type(events, "step")
    full_steps = of_type(replayed, "step")
    assert steps == full_steps[: len(steps)]
    assert steps[-1]["ic_s"] > end_s - 2.0  # up to the cut, not far before it
    assert of_type(events, "metrics")[-1]["t_s"] == math.floor(end_s)
    assert cue_kinds(events)[-1] == "session_done"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"hello", "expected a .log recording or a running-truth .csv"),
        ("bad.log", b"hello, not a recording", "not a stridecue log"),
        ("empty.log", b"", "the file is empty"),
        ("missing.log", None, "no such file"),
    ],
)
def test_replay_refuses_what_is_not_a_recording(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = invoke("replay", path)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "cannot replay" in said(result)
    assert message in said(result)
    assert "Traceback" not in result.output


# --- eval ----------------------------------------------------------------------------------------


def test_eval_of_a_simulated_log(simulated: Path, truth: dict[str, Any]) -> None:
    result = invoke("eval", simulated, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["datasets"]["simulated/nrr"]
    assert set(figures) >= DATASET_FIGURES
    # Contacts scored: after the first second, before the latency bound at the end.
    contacts = np.array(truth["contacts_s"])
    kept = (contacts[:, 0] >= 1.0) & (contacts[:, 1] <= sample_end_s(simulated) - 0.15)
    assert figures["n_contacts"] == int(kept.sum())
    assert figures["recall"] >= 0.99
    assert figures["precision"] >= 0.99
    assert figures["reps_found"] == figures["reps_true"] == REPS
    assert figures["false_reps"] == 0
    assert figures["rep_start_err_s"]["max"] <= 1.0
    assert figures["rep_end_err_s"]["max"] <= 1.0


@pytest.mark.shared
def test_eval_of_the_running_truth_folder(running_truth: Path) -> None:
    result = invoke("eval", running_truth, "--json")
    assert result.exit_code == 0, result.output
    datasets = json.loads(result.stdout)["datasets"]
    for name in ("bach2022", "alcantara2022"):
        metas = [json.loads(p.read_text()) for p in (running_truth / name).glob("*.json")]
        running = sum(m["activity"] == "running" for m in metas)
        figures = datasets[f"{name}/running"]
        assert figures["trials"] == running > 0
        assert figures["recall"] >= 0.95


def test_eval_of_an_empty_folder(tmp_path: Path) -> None:
    result = invoke("eval", tmp_path)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "nothing to evaluate" in said(result)
    assert "no trials here" in said(result)


# --- sim-run -----------------------------------------------------------------------------------


def expected_cue_kinds(reps: int) -> list[str]:
    one = ["get_ready", "countdown", "countdown", "countdown", "go", "rep_start", "ease", "rep_end"]
    return one * reps + ["set_done", "session_done"]


def test_sim_run_cues_a_whole_session() -> None:
    events = json_lines(invoke("sim-run", "--speed", "max", "--json", *SHORT_PLAN))
    cues = of_type(events, "cue")
    assert [c["kind"] for c in cues] == expected_cue_kinds(REPS)
    assert [c["text"] for c in cues if c["kind"] == "countdown"] == ["3", "2", "1"] * REPS
    for k in range(1, REPS + 1):
        rep_cues = [c for c in cues if c["rep"] == k and c["kind"] != "set_done"]
        assert [c["reps"] for c in rep_cues] == [REPS] * 8
        by_kind = {c["kind"]: c for c in rep_cues}
        assert f"Rep {k} of {REPS}" in by_kind["get_ready"]["text"]
        assert f"Rep {k} of {REPS}" in by_kind["go"]["text"]
        assert f"rep {k} of {REPS}" in by_kind["rep_start"]["text"].lower()
        # "Ease off" exactly rep_s after the detected real start of the rep.
        ease_after_s = by_kind["ease"]["t_s"] - by_kind["rep_start"]["at_s"]
        assert ease_after_s == pytest.approx(REP_S, abs=1e-6)
    summaries = of_type(events, "rep")
    assert [s["rep"] for s in summaries] == list(range(1, REPS + 1))
    assert all(s["duration_s"] == pytest.approx(REP_S, abs=1.5) for s in summaries)


def test_sim_run_renders_the_live_view() -> None:
    result = invoke("sim-run", "--speed", "max", *SHORT_PLAN)
    assert result.exit_code == 0, result.output
    assert "cadence" in result.stdout
    assert "Workout complete" in result.stdout
    assert f"Go! Rep {REPS} of {REPS}" in result.stdout


# --- bench ---------------------------------------------------------------------------------------


def test_bench_prints_one_flat_json_object() -> None:
    args = ["--json", "--minutes", "6", "--athletes", "8", "--stream-s", "3", "--repeats", "1"]
    result = invoke("bench", *args)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    figures = json.loads(line, parse_constant=_reject_constant)
    assert all(not isinstance(v, dict | list) for v in figures.values())
    for key in ("replay_x_realtime", "stream_cpu_ms_per_stream_s", "stream_block_p99_ms"):
        assert isinstance(figures[key], int | float) and math.isfinite(figures[key])
        assert figures[key] > 0
    growth = figures["memory_growth_mb"]
    assert isinstance(growth, int | float) and math.isfinite(growth)
    assert growth > -1.0


# --- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim-run", "--placement", "hand"], "unknown placement 'hand'"),
        (["sim-run", "--template", "marathon"], "unknown template 'marathon'"),
        (["sim-run", "--speed", "0"], "speed must be > 0"),
        (["sim-run", "--speed", "fast"], "speed must be a number or 'max'"),
        (["sim-run", "--reps", "0"], "at least one rep"),
        (["demo", "--athletes", "0"], "at least one athlete"),
        (["demo", "--speed", "0"], "speed must be > 0"),
        (["demo", "--token", "short"], "at least 16 characters"),
        (["demo", "--template", "marathon"], "unknown template 'marathon'"),
        (["simulate", "-o", "{tmp}/x.log", "--placement", "wrist"], "unknown placement 'wrist'"),
        (["simulate", "-o", "{tmp}/x.log", "--impair", "sparkle=1"], "bad impairment"),
        (["simulate", "-o", "{tmp}/x.log", "--template", "marathon"], "unknown template"),
        (["replay", "{log}", "--speed", "0"], "speed must be > 0"),
        (["replay", "{log}", "--template", "marathon"], "unknown template 'marathon'"),
    ],
    ids=lambda v: " ".join(a for a in v if "{" not in a) if isinstance(v, list) else "",
)
def test_bad_arguments_get_a_clear_message(
    simulated: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [a.format(tmp=tmp_path, log=simulated) for a in args]
    result = invoke(*args)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert message in said(result)
    assert not (tmp_path / "x.log").exists()  # nothing written on bad input


# --- the installed command -----------------------------------------------------------------------


def test_installed_console_script_runs() -> None:
    sibling = Path(sys.executable).parent / "stridecue"
    script = str(sibling) if sibling.is_file() else shutil.which("stridecue")
    if script is None:
        pytest.skip("the stridecue console script is not installed")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("demo", "sim-run", "simulate", "replay", "eval", "bench"):
        assert re.search(rf"\b{command}\b", done.stdout)
