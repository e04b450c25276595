"""Trials with ground truth: the real running-truth folders and simulated log + truth pairs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dsp.samples import SampleBlock
from recordings.logfile import LogHeader, LogWriter, Note
from recordings.trials import (
    Trial,
    TrialError,
    find_trials,
    open_source,
    truth_path_for,
    write_truth,
)

RUNNING_TRUTH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "running-truth"
needs_shared = pytest.mark.skipif(
    not RUNNING_TRUTH.is_dir(), reason="../shared/data/running-truth is absent"
)


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """The CSV by the standard library: an independent reading to compare the loader with."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(v) for v in row] for row in rows[1:]])


@pytest.fixture(scope="module")
def real_trials() -> list[Trial]:
    if not RUNNING_TRUTH.is_dir():
        pytest.skip("../shared/data/running-truth is absent")
    return find_trials([RUNNING_TRUTH])


@pytest.mark.shared
@needs_shared
def test_finds_every_running_truth_trial(real_trials: list[Trial]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for trial in real_trials:
        key = (trial.dataset, trial.activity)
        counts[key] = counts.get(key, 0) + 1
    assert counts == {
        ("bach2022", "running"): 5,
        ("bach2022", "walking"): 11,
        ("alcantara2022", "running"): 16,
    }
    names = [t.name for t in real_trials]
    assert names == sorted(names)
    assert "bach2022/trial01_running" in names
    assert "alcantara2022/trial31" in names
    # Naming a dataset folder, or one of its files, finds the same trials, once each.
    again = find_trials(
        [RUNNING_TRUTH / "bach2022", RUNNING_TRUTH / "bach2022" / "trial01_running.csv"]
    )
    assert len(again) == 16


@pytest.mark.shared
@needs_shared
@pytest.mark.parametrize("name", ["bach2022/trial01_running", "alcantara2022/trial01"])
def test_real_trial_samples_match_the_csv(real_trials: list[Trial], name: str) -> None:
    (trial,) = [t for t in real_trials if t.name == name]
    columns, rows = read_csv(trial.path)
    acc_cols = [i for i, c in enumerate(columns) if c.endswith("_g")]
    samples = trial.samples()
    assert len(samples) == rows.shape[0]
    assert samples.gyro_dps is None
    np.testing.assert_array_equal(samples.t_s, rows[:, 0])
    np.testing.assert_array_equal(samples.acc_g[:, : len(acc_cols)], rows[:, acc_cols])
    if len(acc_cols) == 2:  # alcantara2022: vertical and anterior-posterior, zero third axis
        np.testing.assert_array_equal(samples.acc_g[:, 2], 0.0)
    else:
        assert np.all(np.any(samples.acc_g != 0.0, axis=0))
    # The CSV timestamps step at the rate the JSON declares (to the CSV's 1 ms resolution).
    np.testing.assert_allclose(np.diff(samples.t_s), 1.0 / trial.sample_rate_hz, atol=6e-4)
    truth = json.loads(trial.path.with_suffix(".json").read_text())
    np.testing.assert_array_equal(trial.contacts_s, np.array(truth["contacts_s"]))
    assert trial.placement == truth["placement"]
    assert trial.reps_s is None


@pytest.mark.shared
@needs_shared
def test_real_trial_shapes(real_trials: list[Trial]) -> None:
    for trial in real_trials:
        samples = trial.samples()
        contacts = trial.contacts_s
        assert samples.acc_g.shape == (len(samples), 3)
        assert contacts.ndim == 2 and contacts.shape[1] == 2 and len(contacts) >= 5
        assert np.all(contacts[:, 0] < contacts[:, 1])
        assert samples.t_s[0] <= contacts[0, 0] and contacts[-1, 1] <= samples.t_s[-1]
        zero_axis = np.all(samples.acc_g[:, 2] == 0.0)
        assert zero_axis == (trial.dataset == "alcantara2022"), trial.name


@pytest.mark.shared
@needs_shared
def test_open_source_streams_a_csv_in_one_second_blocks(real_trials: list[Trial]) -> None:
    trial = real_trials[0]
    header, records = open_source(trial.path)
    assert header == LogHeader(
        device="csv",
        placement=trial.placement,
        sample_rate_hz=trial.sample_rate_hz,
        start_time="",
        extra={"dataset": trial.dataset, "activity": trial.activity, "trial": trial.name},
    )
    blocks = list(records)
    assert all(isinstance(b, SampleBlock) for b in blocks)
    sizes = [len(b) for b in blocks if isinstance(b, SampleBlock)]
    block_len = round(trial.sample_rate_hz)
    assert sizes[:-1] == [block_len] * (len(sizes) - 1) and 0 < sizes[-1] <= block_len
    whole = SampleBlock.concat([b for b in blocks if isinstance(b, SampleBlock)])
    np.testing.assert_array_equal(whole.acc_g, trial.samples().acc_g)


def test_two_axis_csv_gets_a_zero_third_axis(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "t_s,acc_vert_g,acc_ap_g,force_bw\n0,1.5,-0.25,2\n0.002,0,0.5,1\n"
    )
    truth = {
        "dataset": "lab",
        "activity": "running",
        "placement": "sacrum",
        "sample_rate_hz": 500.0,
        "contacts_s": [[0.0, 0.002]],
    }
    (tmp_path / "t.json").write_text(json.dumps(truth))
    (trial,) = find_trials([tmp_path / "t.csv"])
    assert trial.name == "lab/t"
    samples = trial.samples()
    np.testing.assert_array_equal(samples.t_s, [0.0, 0.002])
    np.testing.assert_array_equal(samples.acc_g, [[1.5, -0.25, 0.0], [0.0, 0.5, 0.0]])


def simulated_run(folder: Path) -> tuple[Path, SampleBlock, dict[str, object]]:
    rng = np.random.default_rng(7)
    fs_hz = 200.0
    t_s = np.arange(600) / fs_hz
    acc = rng.normal(1.0, 0.5, (600, 3)).astype(np.float32).astype(np.float64)
    whole = SampleBlock(t_s, acc)
    log_path = folder / "run.log"
    header = LogHeader("simulator", "foot", fs_hz, "2024-05-01T06:30:00Z", extra={"seed": 7})
    with LogWriter(log_path, header) as writer:
        for i in range(0, len(whole), 4):
            writer.write(whole.slice(i, i + 4))
            if i == 300:
                writer.write(Note(t_s[i], {"rep": 1}))
    truth: dict[str, object] = {
        "dataset": "simulated",
        "activity": "nrr",
        "placement": "foot",
        "sample_rate_hz": fs_hz,
        "contacts_s": np.array([[0.1000004, 0.3], [0.8123456789, 1.0]]),
        "reps_s": [(1.5, 2.75)],
    }
    write_truth(truth_path_for(log_path), truth)
    return log_path, whole, truth


def test_simulated_log_and_truth_pair(tmp_path: Path) -> None:
    log_path, whole, _ = simulated_run(tmp_path)
    assert truth_path_for(log_path) == tmp_path / "run.truth.json"
    (trial,) = find_trials([tmp_path])
    assert (trial.name, trial.path, trial.dataset, trial.activity) == (
        "run",
        log_path,
        "simulated",
        "nrr",
    )
    assert find_trials([log_path]) == [trial]
    samples = trial.samples()
    np.testing.assert_array_equal(samples.t_s, whole.t_s)
    np.testing.assert_array_equal(samples.acc_g, whole.acc_g)
    # Truth is stored to the microsecond.
    np.testing.assert_array_equal(trial.contacts_s, [[0.1, 0.3], [0.812346, 1.0]])
    reps = trial.reps_s
    assert reps is not None
    np.testing.assert_array_equal(reps, [[1.5, 2.75]])
    header, records = open_source(log_path)
    assert header.device == "simulator" and header.extra == {"seed": 7}
    assert sum(isinstance(r, Note) for r in records) == 1


def test_write_truth_refuses_non_finite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finite"):
        write_truth(tmp_path / "x.truth.json", {"contacts_s": [[0.1, float("nan")]]})


def test_errors_name_the_path_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing to see")
    (tmp_path / "orphan.csv").write_text("t_s,acc_x_g\n0,1\n")
    with pytest.raises(TrialError, match="no trials here") as info:
        find_trials([tmp_path])
    assert info.value.path == tmp_path
    with pytest.raises(TrialError, match=r"no orphan\.json beside it"):
        find_trials([tmp_path / "orphan.csv"])
    log_path, _, _ = simulated_run(tmp_path)
    truth_path_for(log_path).unlink()
    with pytest.raises(TrialError, match=r"no run\.truth\.json beside it"):
        find_trials([log_path])
    with pytest.raises(TrialError, match="no such file"):
        find_trials([tmp_path / "missing"])
    (tmp_path / "bad.csv").write_text("time,acc\n0,1\n")
    (tmp_path / "bad.json").write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(TrialError, match="lacks activity, placement"):
        find_trials([tmp_path / "bad.csv"])
    truth = {"dataset": "x", "activity": "running", "placement": "foot"}
    (tmp_path / "bad.json").write_text(json.dumps(truth | {"sample_rate_hz": 1, "contacts_s": []}))
    (trial,) = find_trials([tmp_path / "bad.csv"])
    with pytest.raises(TrialError, match="expected t_s then 1-3 acceleration columns"):
        trial.samples()
    with pytest.raises(TrialError, match=r"\.log recording or a running-truth \.csv"):
        open_source(tmp_path / "readme.txt")
