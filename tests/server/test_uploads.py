"""Uploaded logs: replayed in the background into a stored session equal to `stridecue replay`'s."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from websockets.sync.client import connect

from bus.messages import Message
from bus.session_messages import SessionMessages
from dsp.events import Cue, Event, Metrics, Placement, RepSummary, StepEvent
from dsp.plan import SessionPlan, template
from firmware_sim.runner import SimulatedAthlete
from recordings import logfile
from recordings.logfile import SYNC, LogHeader, LogWriter
from recordings.runner import build_engine, run_session
from recordings.sources import RecordedSource, SimulatedSource
from server.app import create_app
from server.live import LiveHub
from server.replay import BATCH_STREAM_S, survey
from server.settings import ServerSettings
from server.store import Store
from server.upload_jobs import Uploads, UploadState
from tests.server.conftest import PLAN
from tests.server.conftest_app import DEADLINE_S, TOKEN, auth, serving, settings

START = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
HEADER = LogHeader("firmware_sim", "foot", 200.0, "2024-05-01T06:30:00Z")
E = TypeVar("E")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-rep session of ~110 s, open loop, written as `stridecue simulate` writes it."""
    path = tmp_path_factory.mktemp("uploads") / "run.log"
    athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=5, fs_hz=200.0)
    with LogWriter(path, HEADER) as writer:
        for block in SimulatedSource(athlete, block_s=1.0):
            writer.write(block)
    return path


@dataclasses.dataclass
class Replayed:
    """What `stridecue replay` gets from a log: the engine's events, block by block, and the
    messages they make when converted the way an upload converts them."""

    batches: list[list[Event]]
    messages: list[Message]

    def of(self, kind: type[E]) -> list[E]:
        return [e for batch in self.batches for e in batch if isinstance(e, kind)]


def replayed(path: Path, plan: SessionPlan | None) -> Replayed:
    source = RecordedSource.open(path)
    engine = build_engine(source, plan)
    session = SessionMessages("anna", "s", START, engine, template=plan.name if plan else None)
    out = Replayed([], [])

    def sink(events: Sequence[Event]) -> None:
        out.batches.append(list(events))
        out.messages.extend(session.convert(events))

    asyncio.run(run_session(source, engine, [sink]))
    return out


def wall(t_s: float) -> str:
    """How the API shows sensor time ``t_s`` of the recording: its start + ``t_s``, in UTC."""
    return (START + timedelta(seconds=t_s)).isoformat().replace("+00:00", "Z")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def config(tmp_path: Path) -> ServerSettings:
    return settings(tmp_path, data_dir=tmp_path / "data")


@pytest.fixture
def client(config: ServerSettings) -> Iterator[httpx.Client]:
    with (
        serving(create_app(config)) as address,
        httpx.Client(base_url=f"http://{address}", headers=auth()) as client,
    ):
        yield client


def post(client: httpx.Client, body: Any, **params: str) -> httpx.Response:
    return client.post("/api/uploads", params={"athlete_id": "anna", **params}, content=body)


def poll(client: httpx.Client, upload_id: str, *states: str) -> tuple[dict[str, Any], list[float]]:
    """Poll an upload until it is in one of ``states`` (no event crosses HTTP); its last state
    and every progress seen."""
    deadline = time.monotonic() + DEADLINE_S
    progress: list[float] = []
    while True:
        upload: dict[str, Any] = client.get(f"/api/uploads/{upload_id}").json()
        progress.append(upload["progress"])
        if upload["state"] in states:
            return upload, progress
        assert time.monotonic() < deadline, f"upload {upload_id} still {upload['state']}"
        time.sleep(0.01)  # polling with a deadline


def finished(client: httpx.Client, upload_id: str) -> tuple[dict[str, Any], list[float]]:
    return poll(client, upload_id, "done", "failed")


def left_behind(config: ServerSettings) -> list[Path]:
    """Temporary upload files still in the data folder."""
    return sorted((config.data_dir / "uploads").glob("*"))


def metric_rows(metrics: Sequence[Metrics]) -> list[dict[str, Any]]:
    return [
        {
            "sensor_time_s": m.t_s,
            "wall_time": wall(m.t_s),
            "cadence_spm": m.cadence_spm,
            "gct_ms": m.gct_ms,
            "step_count": m.step_count,
            "intensity_g": m.intensity_g,
            "speed_m_s": m.speed_m_s,
            "quality": dataclasses.asdict(m.quality),
            "activity": None if m.activity is None else m.activity.value,
            "cadence_source": None if m.cadence_source is None else m.cadence_source.value,
            "cadence_confidence": m.cadence_confidence,
            "lost_fraction": m.lost_fraction,
            "clipped_fraction": m.clipped_fraction,
            "trusted": m.trusted,
            "seconds": 1,
        }
        for m in metrics
    ]


NO_DAMAGE = {
    "truncated_records": 0,
    "corrupted_stretches": 0,
    "skipped_records": 0,
    "malformed_packets": 0,
}


@pytest.mark.parametrize("template_name", [None, "nrr"])
def test_an_uploaded_log_becomes_the_session_replay_makes(
    client: httpx.Client, config: ServerSettings, recorded: Path, template_name: str | None
) -> None:
    params = {} if template_name is None else {"template": template_name}
    expected = replayed(recorded, None if template_name is None else template(template_name))
    address = client.base_url.netloc.decode()
    with connect(f"ws://{address}/api/live/anna?token={TOKEN}") as live:
        accepted = post(client, recorded.read_bytes(), **params)
        assert accepted.status_code == 202, accepted.text
        upload = accepted.json()
        assert accepted.headers["location"] == f"/api/uploads/{upload['id']}"
        assert (upload["state"], upload["progress"], upload["session_id"]) == ("queued", 0.0, None)
        done, progress = finished(client, upload["id"])
        assert done["state"] == "done", done["error"]
        session_id = done["session_id"]
        # The new cues went live too, as they were stored.
        live_cue_ids = []
        while len(live_cue_ids) < len(expected.of(Cue)):
            item = json.loads(live.recv(timeout=DEADLINE_S))
            assert item["message"]["session_id"] == session_id
            if item["kind"] == "cues":
                live_cue_ids.append(item["message"]["id"])

    assert progress == sorted(progress) and progress[-1] == 1.0
    samples = [block for block in RecordedSource.open(recorded) if len(block)]
    assert done == upload | {
        "state": "done",
        "progress": 1.0,
        "session_id": session_id,
        "size_bytes": recorded.stat().st_size,
        "template": template_name,
        "device": "firmware_sim",
        "placement": "foot",
        "sample_rate_hz": 200.0,
        "recorded_at": "2024-05-01T06:30:00Z",
        "duration_s": float(samples[-1].t_s[-1] - samples[0].t_s[0]),
        "damage": NO_DAMAGE,
        "messages_stored": len(expected.messages),
        "started_at": done["started_at"],
        "finished_at": done["finished_at"],
    }
    assert at(upload["received_at"]) <= at(done["started_at"]) <= at(done["finished_at"])
    assert [u["id"] for u in client.get("/api/uploads").json()] == [upload["id"]]
    assert left_behind(config) == []

    cues = client.get(f"/api/sessions/{session_id}/cues").json()
    assert [c.pop("id") for c in cues] == live_cue_ids
    assert cues == [
        {
            "seq": seq,
            "sensor_time_s": cue.t_s,
            "wall_time": wall(cue.t_s),
            "kind": cue.kind.value,
            "text": cue.text,
            "rep": cue.rep,
            "reps": cue.reps,
            "at_s": cue.at_s,
            "reason": cue.reason,
        }
        for seq, cue in enumerate(expected.of(Cue), start=1)
    ]
    reps = client.get(f"/api/sessions/{session_id}/reps").json()
    assert [{k: v for k, v in r.items() if k != "id"} for r in reps] == [
        {"seq": seq, "sensor_time_s": rep.end_s, "wall_time": wall(rep.end_s)}
        | dataclasses.asdict(rep)
        | {"complete": rep.complete}
        for seq, rep in enumerate(expected.of(RepSummary), start=1)
    ]
    metrics = client.get(f"/api/sessions/{session_id}/metrics").json()
    assert metrics == metric_rows(expected.of(Metrics))

    session = client.get(f"/api/sessions/{session_id}").json()
    assert session["athlete_id"] == "anna"
    # The session sits where the recording's header puts it: sensor time 0 is its start time.
    sensor_times_s = [m.sensor_time_s for m in expected.messages]
    assert (session["started_at"], session["last_at"]) == (
        wall(min(sensor_times_s)),
        wall(max(sensor_times_s)),
    )
    assert 0.0 < min(sensor_times_s) < 1.0
    assert (session["template"], session["state"]) == (template_name, "done")
    assert session["counts"] == {
        "cues": len(expected.of(Cue)),
        "reps": len(expected.of(RepSummary)),
        "metrics": len(expected.of(Metrics)),
        "steps": len(expected.of(StepEvent)),
    }
    if template_name is None:  # auto mode finds the two reps the simulated runner ran
        assert [r["rep"] for r in reps] == [1, 2]


def _truncated(data: bytes) -> bytes:
    """Cut inside a record halfway: a recorder killed mid-write."""
    return data[: data.find(SYNC, len(data) // 2) + 100]


def _corrupted(data: bytes) -> bytes:
    """Ten bytes overwritten inside a record halfway: a bad CRC."""
    damaged = bytearray(data)
    start = data.find(SYNC, len(data) // 2) + 200
    damaged[start : start + 10] = b"\xff" * 10
    return bytes(damaged)


@pytest.mark.parametrize(
    ("damage", "counter"),
    [(_truncated, "truncated_records"), (_corrupted, "corrupted_stretches")],
    ids=["truncated", "corrupted"],
)
def test_a_damaged_log_keeps_everything_valid(
    client: httpx.Client,
    recorded: Path,
    tmp_path: Path,
    damage: Any,
    counter: str,
) -> None:
    damaged = tmp_path / "damaged.log"
    damaged.write_bytes(damage(recorded.read_bytes()))
    accepted = post(client, damaged.read_bytes())
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["damage"] == NO_DAMAGE | {counter: 1}  # counted up front

    done, _ = finished(client, accepted.json()["id"])
    assert done["state"] == "done", done["error"]
    assert done["damage"] == NO_DAMAGE | {counter: 1}
    stored = client.get(f"/api/sessions/{done['session_id']}/metrics").json()
    assert stored == metric_rows(replayed(damaged, None).of(Metrics))
    whole = metric_rows(replayed(recorded, None).of(Metrics))
    half = len(whole) // 2
    assert stored[: half - 1] == whole[: half - 1]  # everything before the damage
    if counter == "corrupted_stretches":  # and everything after it, the hole reported
        assert stored[-1]["sensor_time_s"] == whole[-1]["sensor_time_s"]
        assert stored[-1]["quality"]["gaps"] == 1
    else:
        assert len(stored) < len(whole)


def with_header(log: bytes, **changes: Any) -> bytes:
    """``log`` under another header (one a writer would refuse to write)."""
    fields = dataclasses.asdict(HEADER) | changes
    header = logfile._frame(logfile.RecordType.HEADER, 0, json.dumps(fields).encode())
    return header + log[log.find(SYNC, 1) :]


def test_what_cannot_be_replayed_is_refused_with_the_reason(
    client: httpx.Client, config: ServerSettings, recorded: Path, tmp_path: Path
) -> None:
    header_only = tmp_path / "empty.log"
    LogWriter(header_only, HEADER).close()
    log = recorded.read_bytes()

    def refused(response: httpx.Response, code: int) -> Any:
        assert response.status_code == code, response.text
        return response.json()["detail"]

    assert refused(post(client, b"garbage, not a log"), 422) == (
        "not a stridecue log (it does not begin with the bytes 89 53 43 4C); "
        "pass a .log file written by stridecue"
    )
    assert refused(post(client, b""), 422) == "the file is empty: nothing was recorded"
    assert refused(post(client, log[:20]), 422) == (
        "the header record is damaged or cut short, so the recording cannot be identified"
    )
    assert refused(post(client, header_only.read_bytes()), 422) == (
        "the log holds no intact record of sensor data: nothing to replay"
    )
    for change, reason in [
        (
            {"placement": "wrist"},
            "the log's header cannot be used: 'wrist' is not a valid Placement",
        ),
        ({"start_time": "yesterday"}, "the log's header has no valid start_time ('yesterday')"),
    ]:
        assert refused(post(client, with_header(log, **change)), 422).startswith(reason)
    assert refused(post(client, log, template="marathon"), 422) == (
        "unknown template 'marathon'; choose one of ['bursts', 'nrr']"
    )
    bad_athlete = client.post("/api/uploads", params={"athlete_id": "anna/#"}, content=log)
    assert refused(bad_athlete, 422)[0]["loc"] == ["query", "athlete_id"]
    no_athlete = client.post("/api/uploads", content=log)
    assert refused(no_athlete, 422)[0]["loc"] == ["query", "athlete_id"]
    form = client.post("/api/uploads?athlete_id=anna", files={"log": ("run.log", log)})
    assert "application/octet-stream" in refused(form, 415)
    anonymous = httpx.post(client.base_url.join("/api/uploads?athlete_id=anna"), content=log)
    assert refused(anonymous, 401).startswith("a valid coach token is required")
    assert refused(client.get("/api/uploads/nope"), 404).startswith("no upload 'nope'")

    assert client.get("/api/uploads").json() == []  # nothing was accepted
    assert left_behind(config) == []


def test_an_upload_over_its_own_limit_is_413(tmp_path: Path, recorded: Path) -> None:
    config = settings(
        tmp_path, data_dir=tmp_path / "data", max_body_bytes=1024, max_upload_bytes=20_000
    )
    log = recorded.read_bytes()

    def chunked() -> Iterator[bytes]:
        yield log[:15_000]
        yield log[15_000:21_000]

    with (
        serving(create_app(config)) as address,
        httpx.Client(base_url=f"http://{address}", headers=auth()) as client,
    ):
        # Past the API's own body limit, within the upload limit: read, then found truncated.
        assert post(client, log[:15_000]).status_code == 202
        for body in (log[:20_001], chunked()):  # declared, then streamed without a length
            response = post(client, body)
            assert response.status_code == 413
            assert "limit is 20000 bytes" in response.json()["detail"]
        # Other routes keep the small limit.
        assert client.request("GET", "/api/athletes", content=log[:1025]).status_code == 413
        uploads = client.get("/api/uploads").json()
        assert [u["size_bytes"] for u in uploads] == [15_000]
        finished(client, uploads[0]["id"])
    assert left_behind(config) == []


def test_one_replay_at_a_time_the_next_ones_wait_in_a_bounded_queue(
    tmp_path: Path, recorded: Path
) -> None:
    config = settings(tmp_path, data_dir=tmp_path / "data", max_queued_uploads=1)
    log = recorded.read_bytes()
    with (
        serving(create_app(config)) as address,
        httpx.Client(base_url=f"http://{address}", headers=auth()) as client,
    ):
        # Another writer holds the database: the first replay waits at its first commit.
        holder = sqlite3.connect(tmp_path / "companion.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            first = post(client, log).json()
            running, _ = poll(client, first["id"], "running")
            assert running["progress"] == 0.0
            second = post(client, log)
            assert second.status_code == 202
            full = post(client, log)
            assert full.status_code == 503
            assert full.headers["retry-after"] == "60"
            assert "1 uploads are already waiting" in full.json()["detail"]
            assert client.get(f"/api/uploads/{second.json()['id']}").json()["state"] == "queued"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        one, _ = finished(client, first["id"])
        two, _ = finished(client, second.json()["id"])

    assert (one["state"], two["state"]) == ("done", "done")
    assert at(two["started_at"]) >= at(one["finished_at"])
    assert one["session_id"] != two["session_id"]
    assert (
        one["messages_stored"] == two["messages_stored"] == len(replayed(recorded, None).messages)
    )
    assert left_behind(config) == []


class GatedStore(Store):
    """A store whose writes wait for ``gate``: holds a replay at its first commit."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def ingest_many(self, messages: Sequence[Message]) -> list[bool]:
        self.entered.set()
        assert self.gate.wait(DEADLINE_S)
        return super().ingest_many(messages)


def test_stopping_the_server_ends_the_replay_and_drops_the_queue(
    tmp_path: Path, recorded: Path, sqlite_url: str
) -> None:
    folder = tmp_path / "uploads"
    folder.mkdir()
    paths = [shutil.copy(recorded, folder / f"{name}.log") for name in ("first", "second")]
    checked = survey(recorded, None)
    store = GatedStore.open(sqlite_url)

    async def main() -> tuple[Any, Any]:
        uploads = Uploads(store, LiveHub(), folder, max_bytes=1 << 20, queue_size=4)
        worker = asyncio.create_task(uploads.run())
        first, second = (
            uploads.submit(Path(p), athlete_id="anna", plan=None, survey=checked, size_bytes=1)
            for p in paths
        )
        await asyncio.to_thread(store.entered.wait, DEADLINE_S)  # replaying, at its first commit
        assert uploads.get(first.id).state is UploadState.RUNNING  # type: ignore[union-attr]
        worker.cancel()
        stopping = asyncio.create_task(asyncio.wait([worker]))
        # Once the replay is asked to stop, let it commit the batch it holds.
        assert await asyncio.to_thread(uploads._jobs[first.id].stop.wait, DEADLINE_S)
        store.gate.set()
        await stopping
        return uploads.get(first.id), uploads.get(second.id)

    try:
        first, second = asyncio.run(main())
        assert (first.state, second.state) == (UploadState.FAILED, UploadState.FAILED)
        assert first.error == "the server stopped during the replay: what was replayed is stored"
        assert second.error == "the server stopped before replaying it: upload the log again"
        # The first batch was committed, then the replay stopped; its progress says so.
        stored = store.metrics(first.session_id)
        assert len(stored) > 0 and stored[-1].sensor_time_s <= BATCH_STREAM_S + 1.0
        one_batch = BATCH_STREAM_S / checked.duration_s
        assert first.progress == pytest.approx(one_batch, abs=1.0 / checked.duration_s)
        assert second.session_id is None
        assert list(folder.iterdir()) == []
    finally:
        store.close()
