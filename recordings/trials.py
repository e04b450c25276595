"""Recordings with ground truth: real running-truth trials (CSV + JSON) and simulated runs (.log).

A running-truth trial is ``NAME.csv`` (``t_s`` then columns named with their unit; acceleration
columns end in ``_g``) with ``NAME.json`` beside it (``dataset``, ``activity``, ``placement``,
``sample_rate_hz``, ``contacts_s`` as ``[initial_contact_s, toe_off_s]`` pairs). A simulated trial
is ``run.log`` with ``run.truth.json`` beside it: the same keys plus ``reps_s``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from dsp.samples import FloatArray, SampleBlock
from recordings.logfile import LogHeader, LogReader, Record

TRUTH_SUFFIX: Final = ".truth.json"
_REQUIRED_KEYS: Final = ("dataset", "activity", "placement", "sample_rate_hz", "contacts_s")


class TrialError(Exception):
    """A path holds no usable trial; ``path`` is the culprit."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _load_truth(path: Path) -> dict[str, Any]:
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TrialError(path, f"cannot read the truth file ({err})") from None
    if not isinstance(truth, dict):
        raise TrialError(path, "the truth file is not a JSON object")
    missing = [k for k in _REQUIRED_KEYS if k not in truth]
    if missing:
        raise TrialError(path, f"the truth file lacks {', '.join(missing)}")
    return truth


@dataclass(frozen=True, slots=True)
class Trial:
    """One recording and its truth. ``path`` is the ``.csv`` or the ``.log``."""

    name: str
    truth: dict[str, Any]
    path: Path

    @property
    def dataset(self) -> str:
        return str(self.truth["dataset"])

    @property
    def activity(self) -> str:
        return str(self.truth["activity"])

    @property
    def placement(self) -> str:
        return str(self.truth["placement"])

    @property
    def sample_rate_hz(self) -> float:
        return float(self.truth["sample_rate_hz"])

    @property
    def contacts_s(self) -> FloatArray:
        """True contacts, (k, 2): initial contact and toe-off, stream seconds."""
        return np.asarray(self.truth["contacts_s"], dtype=np.float64).reshape(-1, 2)

    @property
    def reps_s(self) -> FloatArray | None:
        """True reps, (r, 2): start and end, stream seconds; ``None`` when the trial has none."""
        reps = self.truth.get("reps_s")
        return None if reps is None else np.asarray(reps, dtype=np.float64).reshape(-1, 2)

    def samples(self) -> SampleBlock:
        """All samples of the trial as one block."""
        if self.path.suffix == ".log":
            blocks = [r for r in LogReader(self.path) if isinstance(r, SampleBlock)]
            return SampleBlock.concat(blocks)
        return _read_csv(self.path)


def _read_csv(path: Path) -> SampleBlock:
    with path.open(encoding="utf-8") as f:
        columns = f.readline().strip().split(",")
    acc_cols = [i for i, name in enumerate(columns) if name.endswith("_g")]
    if columns[0] != "t_s" or not 1 <= len(acc_cols) <= 3:
        raise TrialError(path, f"expected t_s then 1-3 acceleration columns *_g, got {columns}")
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[0, *acc_cols], ndmin=2)
    # Some sensors give fewer than three axes (alcantara2022: vertical and anterior-posterior
    # only). A zero axis adds nothing to the vector norm and carries no signal along its own
    # direction, so the core, which works on the norm or finds its own axes, is unaffected.
    acc = np.zeros((data.shape[0], 3))
    acc[:, : len(acc_cols)] = data[:, 1:]
    return SampleBlock(np.ascontiguousarray(data[:, 0]), acc)


def truth_path_for(log_path: Path) -> Path:
    """Where the truth of a simulated run lives: ``run.log`` -> ``run.truth.json``."""
    return log_path.with_suffix(TRUTH_SUFFIX)


def _rounded(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"truth values must be finite, got {value}")
        # Microseconds are far below any event timing precision; rounding keeps the file legible.
        return round(value, 6)
    return value


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    """Write ``truth`` as indented JSON, floats rounded to 1e-6 (s); numpy arrays become lists."""
    path.write_text(json.dumps(_rounded(truth), indent=1) + "\n", encoding="utf-8")


def _csv_trial(csv_path: Path) -> Trial:
    json_path = csv_path.with_suffix(".json")
    if not json_path.is_file():
        raise TrialError(csv_path, f"no {json_path.name} beside it: a trial needs its truth")
    truth = _load_truth(json_path)
    return Trial(f"{truth['dataset']}/{csv_path.stem}", truth, csv_path)


def _log_trial(log_path: Path) -> Trial:
    truth_path = truth_path_for(log_path)
    if not truth_path.is_file():
        raise TrialError(log_path, f"no {truth_path.name} beside it: a trial needs its truth")
    return Trial(log_path.stem, _load_truth(truth_path), log_path)


def _trials_in(path: Path) -> list[Trial]:
    if path.is_dir():
        csvs = [p for p in path.rglob("*.csv") if p.with_suffix(".json").is_file()]
        logs = [p for p in path.rglob("*.log") if truth_path_for(p).is_file()]
        trials = [_csv_trial(p) for p in csvs] + [_log_trial(p) for p in logs]
        if not trials:
            raise TrialError(
                path,
                "no trials here: expected NAME.csv with NAME.json, or run.log with "
                "run.truth.json, in this folder or below",
            )
        return trials
    if path.suffix == ".csv" and path.is_file():
        return [_csv_trial(path)]
    if path.suffix == ".log" and path.is_file():
        return [_log_trial(path)]
    if not path.exists():
        raise TrialError(path, "no such file or folder")
    raise TrialError(path, "expected a folder, a .csv with its .json, or a .log with its truth")


def find_trials(paths: Iterable[Path | str]) -> list[Trial]:
    """Every trial under ``paths`` (folders are searched recursively), sorted by name."""
    found: dict[Path, Trial] = {}
    for path in paths:
        for trial in _trials_in(Path(path)):
            found.setdefault(trial.path.resolve(), trial)
    return sorted(found.values(), key=lambda t: (t.name, str(t.path)))


def _csv_blocks(block: SampleBlock, block_len: int) -> Iterator[Record]:
    for start in range(0, len(block), block_len):
        yield block.slice(start, start + block_len)


def open_source(path: Path | str) -> tuple[LogHeader, Iterator[Record]]:
    """The header and records of a recording to replay: a ``.log``, or a running-truth ``.csv``.

    A CSV gets a synthetic header (device ``"csv"``, the truth's placement and rate, no start
    time) and streams as blocks of about one second.
    """
    path = Path(path)
    if not path.is_file():
        raise TrialError(path, "no such file")
    if path.suffix == ".log":
        reader = LogReader(path)
        return reader.header, iter(reader)
    if path.suffix != ".csv":
        raise TrialError(path, "expected a .log recording or a running-truth .csv")
    trial = _csv_trial(path)
    header = LogHeader(
        device="csv",
        placement=trial.placement,
        sample_rate_hz=trial.sample_rate_hz,
        start_time="",
        extra={"dataset": trial.dataset, "activity": trial.activity, "trial": trial.name},
    )
    block_len = max(1, round(trial.sample_rate_hz))
    return header, _csv_blocks(trial.samples(), block_len)
