"""The HTTP API on a known team, the body limit, CORS, a restart, and `stridecue serve`."""
# ruff: noqa: F811 (fixtures imported from conftest_app are test parameters of the same name)

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from bus.convert import MessageFactory
from bus.messages import CueMessage
from server.app import BodyLimit, create_app
from stridecue import cli
from tests.brokers import Mosquitto
from tests.server.conftest_app import (
    ANNA_CUES,
    ANNA_METRICS_S,
    ANNA_REPS,
    ANNA_SESSION,
    BEN_SESSION,
    T0,
    TOKEN,
    auth,
    cadence_spm,
    gct_ms,
    health,
    publish,
    seeded,  # noqa: F401
    served,  # noqa: F401
    serving,
    settings,
    wait_for,
    wait_subscribed,
)


def test_athletes_and_their_sessions(served: httpx.Client) -> None:
    athletes = served.get("/api/athletes").json()
    assert [a["id"] for a in athletes] == ["anna", "ben"]
    anna = athletes[0]
    assert (anna["online"], anna["device"], anna["sample_rate_hz"]) == (True, "footpod-sim", 200.0)
    assert anna["current_session_id"] == ANNA_SESSION
    assert [s["id"] for s in served.get("/api/athletes/anna/sessions").json()] == [ANNA_SESSION]
    assert [s["id"] for s in served.get("/api/athletes/ben/sessions").json()] == [BEN_SESSION]
    session = served.get(f"/api/sessions/{ANNA_SESSION}").json()
    assert session["athlete_id"] == "anna"
    assert (session["template"], session["state"], session["rep"], session["reps"]) == (
        "nrr",
        "recovery",
        2,
        6,
    )
    assert session["recovery_remaining_s"] == 42.0


def test_cues_reps_and_metrics_are_the_stored_ones(served: httpx.Client) -> None:
    cues = served.get(f"/api/sessions/{ANNA_SESSION}/cues").json()
    assert [(c["seq"], c["sensor_time_s"], c["kind"], c["text"], c["rep"]) for c in cues] == [
        (i + 1, cue.t_s, cue.kind.value, cue.text, cue.rep) for i, cue in enumerate(ANNA_CUES)
    ]
    reps = served.get(f"/api/sessions/{ANNA_SESSION}/reps").json()
    assert [(r["rep"], r["start_s"], r["mean_cadence_spm"], r["fatigue_flag"]) for r in reps] == [
        (rep.rep, rep.start_s, rep.mean_cadence_spm, rep.fatigue_flag) for rep in ANNA_REPS
    ]
    points = served.get(f"/api/sessions/{ANNA_SESSION}/metrics").json()
    t_s = np.array(ANNA_METRICS_S)
    np.testing.assert_array_equal([p["sensor_time_s"] for p in points], t_s)
    np.testing.assert_allclose([p["cadence_spm"] for p in points], cadence_spm(t_s), rtol=1e-12)
    np.testing.assert_allclose([p["gct_ms"] for p in points], gct_ms(t_s), rtol=1e-12)


def test_metrics_downsampled_to_bucket_means(served: httpx.Client) -> None:
    every_s = 30.0
    points = served.get(f"/api/sessions/{ANNA_SESSION}/metrics", params={"every_s": every_s}).json()
    t_s = np.array(ANNA_METRICS_S)
    bucket = np.floor(t_s / every_s)
    starts = np.unique(bucket)
    assert [p["sensor_time_s"] for p in points] == list(starts * every_s)
    expected = [cadence_spm(t_s[bucket == b]).mean() for b in starts]
    np.testing.assert_allclose([p["cadence_spm"] for p in points], expected, rtol=1e-12)
    assert [p["seconds"] for p in points] == [int((bucket == b).sum()) for b in starts]


def test_report_summarises_the_reps(served: httpx.Client) -> None:
    report = served.get(f"/api/sessions/{ANNA_SESSION}/report").json()
    assert report["session"]["id"] == ANNA_SESSION
    assert [r["rep"] for r in report["reps"]] == [1, 2]
    summary = report["summary"]
    assert summary["reps_done"] == 2
    assert summary["reps_planned"] == 6
    assert summary["mean_cadence_spm"] == pytest.approx(np.mean([190.0, 194.0]))
    assert summary["mean_gct_ms"] == pytest.approx(np.mean([205.0, 215.0]))
    assert summary["flagged_reps"] == [2]


UNKNOWN = (
    "/api/athletes/nobody/sessions",
    "/api/sessions/nope",
    "/api/sessions/nope/cues",
    "/api/sessions/nope/reps",
    "/api/sessions/nope/metrics",
    "/api/sessions/nope/report",
)


def test_unknown_ids_are_404(served: httpx.Client) -> None:
    for path in UNKNOWN:
        response = served.get(path)
        assert response.status_code == 404, path
        assert path.split("/")[3] in response.json()["detail"]


def test_invalid_parameters_are_422(served: httpx.Client) -> None:
    for every_s in ("0", "-1", "nan", "inf", "soon", "3601"):
        response = served.get(f"/api/sessions/{ANNA_SESSION}/metrics", params={"every_s": every_s})
        assert response.status_code == 422, every_s
        assert response.json()["detail"][0]["loc"] == ["query", "every_s"]
    response = served.get("/api/athletes/Not%20An%20Id/sessions")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "athlete_id"]


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, max_body_bytes=1024))
    with serving(app) as address:
        url = f"http://{address}/api/athletes"
        refused = httpx.request("GET", url, headers=auth(), content=b"x" * 1025)
        assert refused.status_code == 413
        assert "limit is 1024 bytes" in refused.json()["detail"]
        assert httpx.request("GET", url, headers=auth(), content=b"x" * 1024).status_code == 200


def test_a_streamed_body_is_cut_at_the_limit() -> None:
    """Without a Content-Length (chunked), the body is counted as the route reads it."""
    inner = FastAPI()

    @inner.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    inner.add_middleware(BodyLimit, max_bytes=1000)

    async def post(chunks: int) -> httpx.Response:
        async def body() -> Any:
            for _ in range(chunks):
                yield b"y" * 100

        transport = httpx.ASGITransport(app=inner)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/echo", content=body())

    assert asyncio.run(post(10)).json() == {"bytes": 1000}
    refused = asyncio.run(post(11))
    assert refused.status_code == 413
    assert "limit is 1000 bytes" in refused.json()["detail"]


def test_cors_is_closed_by_default_and_open_to_configured_origins(tmp_path: Path) -> None:
    origin = {"Origin": "https://coach.example.org"}
    with serving(create_app(settings(tmp_path))) as address:
        closed = httpx.get(f"http://{address}/api/athletes", headers=auth() | origin)
    assert "access-control-allow-origin" not in closed.headers
    opened = settings(tmp_path, cors_origins=["https://coach.example.org"])
    with serving(create_app(opened)) as address:
        preflight = httpx.options(
            f"http://{address}/api/athletes",
            headers=origin | {"Access-Control-Request-Method": "GET"},
        )
    assert preflight.headers["access-control-allow-origin"] == "https://coach.example.org"


@pytest.mark.mosquitto
def test_a_restart_keeps_everything_and_a_redelivered_cue_is_stored_once(
    tmp_path: Path, mosquitto_process: Any
) -> None:
    broker: Mosquitto = mosquitto_process("persistence true")
    config = settings(
        tmp_path, mqtt_url=f"mqtt://127.0.0.1:{broker.port}", mqtt_client_id="companion-test"
    )
    factory = MessageFactory("anna", session_id=ANNA_SESSION, clock=lambda: T0)
    first, second = (factory.message(cue) for cue in ANNA_CUES[:2])
    assert isinstance(first, CueMessage) and isinstance(second, CueMessage)

    def cue_ids(address: str) -> list[str]:
        response = httpx.get(f"http://{address}/api/sessions/{ANNA_SESSION}/cues", headers=auth())
        return [c["id"] for c in response.json()] if response.status_code == 200 else []

    with serving(create_app(config)) as address:
        wait_subscribed(address)
        publish(broker.broker, first)
        wait_for(lambda: cue_ids(address) == [first.id], "the first cue to be stored")
    # While the server is down: a new cue (the broker keeps it for the persistent session) and
    # the first one again, as a publisher re-sending from its outbox does.
    publish(broker.broker, second, first)
    with serving(create_app(config)) as address:
        wait_for(lambda: len(cue_ids(address)) == 2, "the cue sent while the server was down")
        assert cue_ids(address) == [first.id, second.id]
        mqtt = health(address)["mqtt"]
        # The new process' decoder had never seen the first cue: the store refused it.
        assert mqtt["accepted"]["cues"] == 2
        assert mqtt["stored"] == 1


def test_serve_prints_a_generated_token_that_opens_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[tuple[FastAPI, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    database = f"sqlite:///{tmp_path / 'served.sqlite'}"
    result = CliRunner().invoke(cli.app, ["serve", "--port", "8123", "--database", database])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123" in result.output
    token = result.output.split("coach token: ")[1].split()[0]
    [(app, options)] = calls
    assert options == {"host": "127.0.0.1", "port": 8123}
    with serving(app) as address:
        url = f"http://{address}/api/athletes"
        assert httpx.get(url, headers=auth(token)).status_code == 200
        assert httpx.get(url, headers=auth(TOKEN)).status_code == 401


def test_serve_refuses_a_short_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("must not start"))
    result = CliRunner().invoke(cli.app, ["serve", "--token", "short"])
    assert result.exit_code == 2
    assert "at least 16 characters" in result.output
    assert "short" not in result.output
