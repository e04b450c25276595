"""The pages in a real browser: a live session on the coach's and the athlete's screens within
2 s of publication, a stored session from the API, the session report, and the login flow.

The live test serves the real app subscribed to a Mosquitto of its own and publishes three
simulated closed-loop sessions on their topics at 40× their pace; the pages record when they
first show each cue (``window.stridecueShown``, epoch ms), which the test compares with each
cue's publication time. Screenshots of every page go to the test run's output.
"""
# ruff: noqa: F811 (fixtures imported from other modules are test parameters of the same name)

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from bus.messages import (
    KIND_OF,
    CueMessage,
    Message,
    MetricsMessage,
    RepMessage,
    SessionMessage,
)
from bus.settings import BrokerConfig
from bus.topics import DELIVERY, topic
from dsp.events import Placement
from firmware_sim.runner import SimulatedAthlete
from recordings.logfile import LogHeader, LogWriter
from recordings.sources import SimulatedSource
from server.app import create_app
from server.auth import COOKIE_NAME
from server.settings import ServerSettings
from tests.server.browser import (
    Console,
    chromium,  # noqa: F401
    countdown,
    fixed,
    rep_counter,
    screenshot,
    signed,
    state_text,
)
from tests.server.conftest import PLAN
from tests.server.conftest_app import (
    ANNA_CUES,
    ANNA_METRICS_S,
    ANNA_REPS,
    ANNA_SESSION,
    CLEO_READY_REASON,
    CLEO_SESSION,
    TOKEN,
    anna_messages,
    auth,
    ben_messages,
    cadence_spm,
    cleo_messages,
    gct_ms,
    publish,
    seed,
    serving,
    settings,
    wait_for,
    wait_subscribed,
)

pytestmark = pytest.mark.browser

LATENCY_LIMIT_MS = 2000.0
CLOCK_SLACK_MS = 10.0  # performance.timeOrigin + now() against time.time(): same clock, rounded
SPEED = 40.0  # sensor seconds per wall second
TEAM = (("anna", 3, 0.0), ("ben", 4, 8.0), ("cara", 5, 16.0))  # athlete, seed, start offset (s)
WAIT_MS = 10_000
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}

# Records every text an element shows (a MutationObserver sees each change, painted or not).
RECORD_TEXTS = """([name, selector]) => {
  const seen = (window.__texts ??= {})[name] = [];
  const record = () => {
    const text = document.querySelector(selector)?.textContent ?? null;
    if (text !== null && seen[seen.length - 1] !== text) seen.push(text);
  };
  const options = { subtree: true, childList: true, characterData: true };
  new MutationObserver(record).observe(document.body, options);
  record();
}"""
# Speech and beeps, counted instead of heard.
FAKE_SPEECH = """
window.__spoken = [];
window.__beeps = 0;
Object.defineProperty(window, "speechSynthesis", {
  configurable: true,
  value: { speak: (u) => window.__spoken.push(u.text), cancel: () => {} },
});
const createOscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__beeps += 1;
  return createOscillator.call(this);
};
"""


class PacedPublisher(threading.Thread):
    """Publishes sessions on their topics at ``SPEED``× their sensor time, recording when each
    cue went out (epoch ms) and setting ``in_recovery`` when the first athlete's recovery
    starts."""

    def __init__(self, broker: BrokerConfig, schedule: list[tuple[float, Message]]) -> None:
        super().__init__(name="paced-publisher", daemon=True)
        self.broker = broker
        self.schedule = schedule
        self.published_ms: dict[str, float] = {}
        self.in_recovery = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as error:  # reported by the test thread
            self.error = error

    async def _publish(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            start = time.monotonic()
            for at_s, message in self.schedule:
                # The schedule itself: messages go out at their (compressed) sensor time.
                await asyncio.sleep(max(0.0, start + at_s / SPEED - time.monotonic()))
                kind = KIND_OF[type(message)]
                if isinstance(message, CueMessage):
                    self.published_ms[message.id] = time.time() * 1000.0
                await client.publish(
                    topic(message.athlete_id, kind),
                    message.model_dump_json().encode(),
                    qos=DELIVERY[kind].qos,
                    retain=DELIVERY[kind].retain,
                )
                if isinstance(message, SessionMessage) and message.state == "recovery":
                    self.in_recovery.set()


def _schedule(sessions: dict[str, list[Message]], offsets_s: dict[str, float]) -> list:
    """Every message at its sensor time plus its athlete's offset; a message never goes out
    before an earlier one of its session (sensor times are not monotonic across kinds)."""
    timed: list[tuple[float, int, Message]] = []
    order = 0
    for athlete, messages in sessions.items():
        latest_s = messages[0].sensor_time_s
        for message in messages:
            latest_s = max(latest_s, message.sensor_time_s)
            timed.append((latest_s + offsets_s[athlete], order, message))
            order += 1
    return [(at_s, message) for at_s, _, message in sorted(timed, key=lambda t: t[:2])]


def _context(chromium: Any, **options: Any) -> Any:
    """A browser context (its own cookies) whose waits give up after ``WAIT_MS``."""
    context = chromium.new_context(**options)
    context.set_default_timeout(WAIT_MS)
    return context


def _of(messages: list[Message], kind: type) -> list[Any]:
    return [m for m in messages if isinstance(m, kind)]


def _login(page: Any, base: str, token: str = TOKEN, next_path: str = "") -> None:
    suffix = f"&next={next_path}" if next_path else ""
    page.goto(f"{base}/#token={token}{suffix}")
    page.wait_for_url(f"{base}{next_path or '/coach'}", timeout=WAIT_MS)


def _rep_cells(rep: RepMessage | Any) -> list[str]:
    """A rep row of the coach card, as format.js writes it."""
    drift = "–" if rep.gct_drift_ms is None else f"{signed(rep.gct_drift_ms)} ms"
    reason = (rep.fatigue_reason or "flagged") if rep.fatigue_flag else ""
    return [
        str(rep.rep),
        f"{fixed(rep.duration_s, 1)} s",
        fixed(rep.mean_cadence_spm),
        fixed(rep.mean_gct_ms),
        drift,
        reason,
    ]


def _card_reps(page: Any, athlete: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f'[data-athlete="{athlete}"] [data-role=reps] tr[data-rep]',
        """rows => rows.map(r => ({rep: r.dataset.rep, flagged: r.classList.contains("flagged"),
                                   cells: [...r.cells].map(c => c.textContent)}))""",
    )


@pytest.fixture
def live_server(tmp_path: Path, mosquitto_process: Callable[..., Any]) -> Iterator[tuple]:
    """The app subscribed to a fresh Mosquitto: ``(base URL, broker)``."""
    broker = mosquitto_process().broker
    config = settings(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{broker.port}")
    with serving(create_app(config)) as address:
        wait_subscribed(address)
        yield f"http://{address}", broker


@pytest.mark.mosquitto
def test_a_live_session_reaches_the_coach_and_the_athlete_within_2_s(
    live_server: tuple[str, BrokerConfig],
    simulated: Callable[..., list[Message]],
    chromium: Any,
) -> None:
    base, broker = live_server
    sessions = {athlete: simulated(athlete, seed) for athlete, seed, _ in TEAM}
    anna = sessions["anna"]
    coach_context = _context(chromium, viewport=DESKTOP)
    phone_context = _context(chromium, viewport=PHONE, device_scale_factor=2, has_touch=True)
    try:
        coach = coach_context.new_page()
        coach_console = Console(coach)
        _login(coach, base)
        phone_context.add_init_script(FAKE_SPEECH)
        phone = phone_context.new_page()
        phone_console = Console(phone)
        _login(phone, base, next_path="/athletes/anna")
        phone.click("#sound")  # a real user gesture: phones play sound only after one
        coach.evaluate(RECORD_TEXTS, ["state", '[data-athlete="anna"] [data-role=state]'])
        phone.evaluate(RECORD_TEXTS, ["countdown", "[data-role=countdown]"])
        for page in (coach, phone):
            page.wait_for_selector("#connection[data-state=live]", timeout=WAIT_MS)

        publisher = PacedPublisher(broker, _schedule(sessions, {a: o for a, _, o in TEAM}))
        publisher.start()
        # Mid-session pictures: Anna's first recovery, the others a few seconds behind.
        assert publisher.in_recovery.wait(WAIT_MS / 1000)
        coach.wait_for_function(
            """() => document.querySelector('[data-athlete="anna"] [data-role=state]')
                 ?.textContent.startsWith("recovery")""",
            timeout=WAIT_MS,
        )
        screenshot(coach, "coach-live")
        screenshot(phone, "athlete-live", full_page=False)
        publisher.join(timeout=WAIT_MS / 1000)
        assert not publisher.is_alive() and publisher.error is None, publisher.error

        every_cue = [c.id for messages in sessions.values() for c in _of(messages, CueMessage)]
        anna_cues = [c.id for c in _of(anna, CueMessage)]
        shown_all = "ids => ids.every(id => window.stridecueShown.some(s => s.id === id))"
        coach.wait_for_function(shown_all, arg=every_cue, timeout=WAIT_MS)
        phone.wait_for_function(shown_all, arg=anna_cues, timeout=WAIT_MS)
        for page, ids in ((coach, every_cue), (phone, anna_cues)):
            shown = {s["id"]: s["shown_ms"] for s in page.evaluate("window.stridecueShown")}
            latency_ms = {i: shown[i] - publisher.published_ms[i] for i in ids}
            late = {i: ms for i, ms in latency_ms.items() if not -CLOCK_SLACK_MS <= ms < 2000}
            assert not late, (page.url, late)

        # Each card ends on what its athlete published last.
        for athlete, messages in sessions.items():
            card = f'[data-athlete="{athlete}"]'
            last_cue = _of(messages, CueMessage)[-1]
            last_metrics = _of(messages, MetricsMessage)[-1]
            last_state = _of(messages, SessionMessage)[-1]
            final = state_text(last_state.state, last_state.rep, last_state.reps, None)
            coach.wait_for_function(
                "([sel, text]) => document.querySelector(sel)?.textContent === text",
                arg=[f"{card} [data-role=state]", final],
                timeout=WAIT_MS,
            )
            cue = coach.locator(f"{card} [data-role=cue]")
            assert cue.get_attribute("data-cue-id") == last_cue.id
            assert cue.text_content() == last_cue.text
            assert coach.text_content(f"{card} [data-role=cadence]") == fixed(
                last_metrics.cadence_spm
            )
            assert coach.text_content(f"{card} [data-role=gct]") == fixed(last_metrics.gct_ms)
            reps = _of(messages, RepMessage)
            assert len(reps) == 2
            assert _card_reps(coach, athlete) == [
                {"rep": str(r.rep), "flagged": r.fatigue_flag, "cells": _rep_cells(r)} for r in reps
            ]

        # Anna's card went through every state she published, in order; a recovery first
        # showed the remaining time of its message, then counted down locally.
        expected = [
            state_text(m.state, m.rep, m.reps, m.recovery_remaining_s)
            for m in _of(anna, SessionMessage)
        ]
        seen = [t for t in coach.evaluate("window.__texts.state") if t != "–"]
        collapsed = [t for i, t in enumerate(seen) if not (i and _same_recovery(seen[i - 1], t))]
        assert collapsed == expected
        # The phone counted the recovery down from the same value, and hid it afterwards.
        counted = [t for t in phone.evaluate("window.__texts.countdown") if t]
        recovery = next(m for m in anna if isinstance(m, SessionMessage) and m.recovery_remaining_s)
        assert counted[0] == countdown(recovery.recovery_remaining_s or 0.0)
        assert phone.text_content("[data-role=countdown]") == ""

        # The phone: Anna's last cue, her rep counter; every cue spoken once, in order.
        last = _of(anna, SessionMessage)[-1]
        assert phone.get_attribute("[data-role=cue]", "data-cue-id") == anna_cues[-1]
        assert phone.text_content("[data-role=rep-counter]") == rep_counter(
            last.state, last.rep, last.reps
        )
        spoken = phone.evaluate("window.__spoken")
        assert spoken == ["Sound on", *(c.text for c in _of(anna, CueMessage))]
        assert phone.evaluate("window.__beeps") == len(spoken)
        screenshot(phone, "athlete-done", full_page=False)

        # The session's report, from what the server stored.
        session_id = anna[0].session_id
        coach.goto(f"{base}/sessions/{session_id}")
        coach.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        assert coach.locator("figure.rep-plot canvas").count() == 2
        labels = coach.locator("figure.rep-plot [data-role=drift]").all_text_contents()
        metrics = _of(anna, MetricsMessage)
        assert labels == [_drift_label(rep, metrics) for rep in _of(anna, RepMessage)]
        screenshot(coach, "session-report")
        assert not coach_console.errors
        assert not phone_console.errors
    finally:
        coach_context.close()
        phone_context.close()


def _publish(broker: BrokerConfig, messages: list[Message]) -> None:
    """Publish in a thread of its own: Playwright's sync API keeps an event loop in this one."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            publish(broker, *messages)
        except BaseException as error:
            failed.append(error)

    thread = threading.Thread(target=run, name="publish")
    thread.start()
    thread.join(timeout=WAIT_MS / 1000)
    assert not thread.is_alive() and not failed, failed


@pytest.mark.mosquitto
def test_after_a_lost_connection_the_coach_page_catches_up_from_the_api(
    live_server: tuple[str, BrokerConfig],
    simulated: Callable[..., list[Message]],
    chromium: Any,
) -> None:
    base, broker = live_server
    messages = simulated("anna", 3)
    cues = _of(messages, CueMessage)
    cut = messages.index(cues[0]) + 1
    routes: list[Any] = []
    forwarding = True  # the first connection's messages reach the page

    def proxy(route: Any) -> None:
        """Stands between the page and the server's live WebSocket: it can lose messages."""
        server = route.connect_to_server()
        first = not routes
        routes.append(route)
        server.on_message(lambda text: route.send(text) if forwarding or not first else None)

    context = _context(chromium, viewport=DESKTOP)
    try:
        page = context.new_page()
        console = Console(page)
        page.route_web_socket(re.compile(r"/api/live$"), proxy)
        _login(page, base)
        page.wait_for_selector("#connection[data-state=live]", timeout=WAIT_MS)
        _publish(broker, messages[:cut])
        card = '[data-athlete="anna"]'
        page.wait_for_selector(f"{card} [data-role=cue][data-cue-id='{cues[0].id}']")
        # The connection goes bad: everything else is published, stored, and never delivered...
        forwarding = False
        _publish(broker, messages[cut:])
        cues_url = f"{base}/api/sessions/{messages[0].session_id}/cues"
        wait_for(
            lambda: len(httpx.get(cues_url, headers=auth()).json()) == len(cues),
            "the server to store every cue",
        )
        assert page.get_attribute(f"{card} [data-role=cue]", "data-cue-id") == cues[0].id
        # ... until it drops: the page reconnects and reloads its state from the API.
        routes[0].close()
        page.wait_for_selector(f"{card} [data-role=cue][data-cue-id='{cues[-1].id}']")
        assert len(routes) == 2
        last = _of(messages, SessionMessage)[-1]
        assert page.text_content(f"{card} [data-role=state]") == state_text(
            last.state, last.rep, last.reps, None
        )
        assert page.text_content(f"{card} [data-role=cadence]") == fixed(
            _of(messages, MetricsMessage)[-1].cadence_spm
        )
        reps = _of(messages, RepMessage)
        assert _card_reps(page, "anna") == [
            {"rep": str(r.rep), "flagged": r.fatigue_flag, "cells": _rep_cells(r)} for r in reps
        ]
        assert page.text_content("#connection") == "live"
        assert not console.errors
    finally:
        context.close()


def _drift_label(rep: RepMessage, metrics: list[MetricsMessage]) -> str:
    """The drift a rep's plot states, from the published per-second metrics: linear trends over
    the plateau (from three times the time to stride cadence plus the metrics' 7-contact lag),
    and the plateau's first and last thirds. Plain sums in the page's order: the same floats."""
    span_s = rep.end_s - rep.start_s
    lag_s = 6 * 60 / rep.mean_cadence_spm if rep.mean_cadence_spm else 0.0
    plateau_s = min(3 * (rep.time_to_stride_cadence_s or 0.0) + lag_s, span_s / 2)
    rows = [m for m in metrics if rep.start_s <= m.sensor_time_s <= rep.end_s and m.trusted]

    def trend(key: str) -> float:
        n = sx = sy = sxx = sxy = 0.0
        for row in rows:
            x, y = row.sensor_time_s - rep.start_s, getattr(row, key)
            if x >= plateau_s and y is not None:
                n, sx, sy, sxx, sxy = n + 1, sx + x, sy + y, sxx + x * x, sxy + x * y
        return (n * sxy - sx * sy) / (n * sxx - sx * sx) * (span_s - plateau_s)

    def thirds(key: str) -> str:
        lo_s, hi_s = rep.start_s + plateau_s, rep.end_s
        third_s = (hi_s - lo_s) / 3
        means = []
        for a, b in ((lo_s, lo_s + third_s), (hi_s - third_s, hi_s)):
            values = [
                getattr(r, key)
                for r in rows
                if a <= r.sensor_time_s <= b and getattr(r, key) is not None
            ]
            total = 0.0
            for value in values:
                total += value
            means.append(fixed(total / len(values)))
        return " → ".join(means)

    return (
        f"drift from {fixed(plateau_s, 1)} s (linear trend): "
        f"cadence {signed(trend('cadence_spm'))} spm, contact {signed(trend('gct_ms'))} ms · "
        f"first → last third: {thirds('cadence_spm')} spm, {thirds('gct_ms')} ms"
    )


def _same_recovery(before: str, after: str) -> bool:
    return before.startswith("recovery ") and after.startswith("recovery ")


@pytest.fixture
def seeded_server(tmp_path: Path) -> Iterator[str]:
    """The app (no broker) on a database holding Anna's and Ben's known sessions."""
    config: ServerSettings = settings(tmp_path)
    seed(config.database, [*anna_messages(), *ben_messages()])
    with serving(create_app(config)) as address:
        yield f"http://{address}"


def test_pages_opened_later_show_the_stored_state(seeded_server: str, chromium: Any) -> None:
    base = seeded_server
    context = _context(chromium, viewport=DESKTOP)
    context.add_init_script(FAKE_SPEECH)
    try:
        page = context.new_page()
        console = Console(page)
        page.goto(f"{base}/")
        page.fill("#token", TOKEN)  # the login form, this time
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/coach", timeout=WAIT_MS)
        anna = '[data-athlete="anna"]'
        page.wait_for_selector(f"{anna} tr[data-rep='2']", timeout=WAIT_MS)
        last_cue = page.locator(f"{anna} [data-role=cue]")
        assert last_cue.text_content() == ANNA_CUES[-1].text
        assert page.text_content(f"{anna} [data-role=cadence]") == fixed(cadence_spm(120.0))
        assert page.text_content(f"{anna} [data-role=gct]") == fixed(gct_ms(120.0))
        # 42 s of recovery were left; the page counts down from there (a second may pass).
        state = page.text_content(f"{anna} [data-role=state]") or ""
        assert re.fullmatch(r"recovery 0:4[12]", state), state
        assert _card_reps(page, "anna") == [
            {"rep": str(r.rep), "flagged": r.fatigue_flag, "cells": _rep_cells(r)}
            for r in ANNA_REPS
        ]
        assert [r["flagged"] for r in _card_reps(page, "anna")] == [False, True]
        assert page.text_content('[data-athlete="ben"] [data-role=state]') == "easy"
        assert page.locator("#history tr").count() == 2
        screenshot(page, "coach-stored")

        page.goto(f"{base}/sessions/{ANNA_SESSION}")
        page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        assert page.locator("[data-role=reps] tr.flagged").count() == 1
        assert page.get_attribute("[data-role=export-csv]", "href") == (
            f"/api/sessions/{ANNA_SESSION}/export.csv"
        )
        assert page.get_attribute("[data-role=export-fit]", "href") == (
            f"/api/sessions/{ANNA_SESSION}/export.fit"
        )
        # The export links download with the cookie (task B's routes).
        with page.expect_download() as csv_download:
            page.click("[data-role=export-csv]")
        assert csv_download.value.suggested_filename == f"{ANNA_SESSION}.csv"
        csv_text = Path(csv_download.value.path()).read_text()
        assert csv_text.startswith("sensor_time_s,")
        assert len(csv_text.splitlines()) == 1 + len(ANNA_METRICS_S)
        with page.expect_download() as fit_download:
            page.click("[data-role=export-fit]")
        assert Path(fit_download.value.path()).read_bytes()[8:12] == b".FIT"
        assert page.text_content("[data-role=reps-done]") == "2 / 6"
        assert page.text_content("[data-role=flagged-label]") == "flagged for fatigue: rep 2"
        assert page.locator("figure.rep-plot").count() == 2
        screenshot(page, "session-stored")

        # The phone shows the latest cue but never replays an old one.
        page.goto(f"{base}/athletes/anna")
        page.wait_for_selector(f"[data-role=cue][data-cue-id='{_anna_last_cue_id(base)}']")
        page.click("#sound")
        assert page.evaluate("window.__spoken") == ["Sound on"]
        assert page.text_content("[data-role=rep-counter]") == "Rep 2 of 6 done"
        assert not console.errors
    finally:
        context.close()


def _anna_last_cue_id(base: str) -> str:
    cues = httpx.get(f"{base}/api/sessions/{ANNA_SESSION}/cues", headers=auth()).json()
    return str(cues[-1]["id"])


def test_login_from_the_link_sets_the_cookie_and_logout_clears_it(
    seeded_server: str, chromium: Any
) -> None:
    base = seeded_server
    context = _context(chromium, viewport={"width": 900, "height": 700})
    try:
        page = context.new_page()
        console = Console(page)
        for path in ("/coach", "/athletes/anna", f"/sessions/{ANNA_SESSION}"):
            page.goto(f"{base}{path}")
            assert page.url == f"{base}/", path  # redirected to the login page
        page.goto(f"{base}/#token=not-the-token-at-all")
        page.wait_for_selector("#login-message[data-kind=error]", timeout=WAIT_MS)
        assert page.url == f"{base}/"  # the fragment is gone from the address bar
        assert not context.cookies()
        screenshot(page, "login-refused")

        _login(page, base)
        (cookie,) = context.cookies()
        assert cookie["name"] == COOKIE_NAME and cookie["value"] == TOKEN
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")
        assert cookie["secure"] is False and cookie["expires"] == -1  # a session cookie
        assert page.evaluate("document.cookie") == ""  # no script can read it
        assert TOKEN not in page.evaluate("history.length + location.href")

        page.click("#logout")
        page.wait_for_url(f"{base}/", timeout=WAIT_MS)
        assert not context.cookies()
        page.goto(f"{base}/coach")
        assert page.url == f"{base}/"
        # 401s from the login attempt with a wrong token are expected console noise.
        assert all("401" in error for error in console.errors), console.errors
    finally:
        context.close()


@pytest.fixture(scope="module")
def recorded_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-rep session of ~110 s from the simulated footpod, as `stridecue simulate` writes it."""
    path = tmp_path_factory.mktemp("browser") / "run.log"
    athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=5, fs_hz=200.0)
    with LogWriter(path, LogHeader("firmware_sim", "foot", 200.0, "2024-05-01T06:30:00Z")) as log:
        for block in SimulatedSource(athlete, block_s=1.0):
            log.write(block)
    return path


def test_a_recorded_run_uploaded_from_the_coach_page_becomes_a_report(
    seeded_server: str, recorded_log: Path, chromium: Any
) -> None:
    base = seeded_server
    context = _context(chromium, viewport=DESKTOP)
    try:
        page = context.new_page()
        console = Console(page)
        _login(page, base)
        page.wait_for_selector("#connection[data-state=live]")
        page.set_input_files("#upload input[name=file]", str(recorded_log))
        page.fill("#upload input[name=athlete]", "dora")
        page.select_option("#upload select[name=template]", "")  # auto: find the reps
        page.click("#upload button[type=submit]")
        link = page.wait_for_selector("#upload-message a")
        assert link is not None
        href = link.get_attribute("href") or ""
        (upload,) = httpx.get(f"{base}/api/uploads", headers=auth()).json()
        assert upload["state"] == "done"
        assert href == f"/sessions/{upload['session_id']}"
        # The replay went out live too: Dora has a card, and the sessions table lists her run.
        page.wait_for_selector('[data-athlete="dora"] tr[data-rep]')
        page.wait_for_selector("#history tr:has-text('dora')")
        link.click()
        page.wait_for_selector("body[data-ready=true]")
        report = httpx.get(f"{base}/api/sessions/{upload['session_id']}/report", headers=auth())
        reps = report.json()["reps"]
        assert len(reps) == 2
        assert page.locator("[data-role=reps] tr[data-rep]").count() == len(reps)
        assert page.text_content("[data-role=reps-done]") == str(len(reps))
        assert not console.errors
    finally:
        context.close()


# A poor-signal band (charts.js POOR_BAND) on the chart's transparent canvas, RGBA.
POOR_BAND_RGBA = (134, 142, 150, round(0.35 * 255))
# The overview canvas's pixels down the plot at sensor second t (the x range is the data's),
# at ten heights: a grid line or a series may cross some of them.
PIXELS_AT = """([t, first, last]) => {
  const canvas = document.querySelector("[data-role=overview] canvas");
  const over = document.querySelector("[data-role=overview] .u-over").getBoundingClientRect();
  const box = canvas.getBoundingClientRect();
  const ratio = canvas.width / box.width;
  const x = over.left - box.left + ((t - first) / (last - first)) * over.width;
  const context = canvas.getContext("2d");
  return Array.from({ length: 10 }, (_, i) => {
    const y = over.top - box.top + over.height * (i + 0.5) / 10;
    return [...context.getImageData(x * ratio, y * ratio, 1, 1).data];
  });
}"""


def _mostly(pixels: list[list[int]], rgba: tuple[int, ...]) -> bool:
    """Whether most of ``pixels`` are ``rgba`` (within rounding)."""
    close = [p for p in pixels if all(abs(a - b) <= 3 for a, b in zip(p, rgba, strict=True))]
    return 2 * len(close) > len(pixels)


@pytest.mark.mosquitto
def test_a_failing_signal_is_never_shown_as_fact(
    live_server: tuple[str, BrokerConfig], chromium: Any
) -> None:
    base, broker = live_server
    messages = cleo_messages()
    context = _context(chromium, viewport=DESKTOP)
    try:
        page = context.new_page()
        console = Console(page)
        _login(page, base)
        page.wait_for_selector("#connection[data-state=live]")
        card = '[data-athlete="cleo"]'
        # Live: up to the second before the signal fails, the card is plain.
        first_periodic = next(
            i
            for i, m in enumerate(messages)
            if isinstance(m, MetricsMessage) and m.cadence_source == "periodicity"
        )
        _publish(broker, messages[:first_periodic])
        before = _of(messages[:first_periodic], MetricsMessage)[-1]
        page.wait_for_function(
            "([sel, text]) => document.querySelector(sel)?.textContent === text",
            arg=[f"{card} [data-role=cadence]", fixed(before.cadence_spm)],
        )
        assert page.get_attribute(f"{card} [data-role=online]", "data-signal") == "good"
        assert page.is_hidden(f"{card} [data-role=signal]")
        assert page.text_content(f"{card} [data-role=gct]") == fixed(before.gct_ms)
        assert page.text_content(f"{card} [data-role=activity]") == "running"

        # Then five seconds of walking whose cadence the signal does not support.
        _publish(broker, messages[first_periodic:])
        page.wait_for_selector(f"{card} [data-role=online][data-signal=poor]")
        last = _of(messages, MetricsMessage)[-1]
        assert not last.trusted and last.gct_ms is None
        assert page.is_visible(f"{card} [data-role=signal]")
        assert page.text_content(f"{card} [data-role=signal]") == "poor signal"
        page.wait_for_function(
            "([sel, text]) => document.querySelector(sel)?.textContent === text",
            arg=[f"{card} [data-role=cadence]", f"{fixed(last.cadence_spm)}?"],
        )
        assert page.text_content(f"{card} [data-role=cadence-label]") == "cadence · uncertain"
        assert page.get_attribute(f"{card} [data-role=cadence-box]", "data-trusted") == "false"
        assert page.text_content(f"{card} [data-role=gct]") == "unavailable"
        assert page.is_hidden(f"{card} [data-role=gct-box] .unit")
        assert page.text_content(f"{card} [data-role=activity]") == "walking"
        page.wait_for_selector(f"{card} [data-role=cue][data-kind=get_ready]")
        assert page.text_content(f"{card} [data-role=cue-reason]") == CLEO_READY_REASON
        hole = page.locator(f"{card} tr[data-rep='2']")
        hole.wait_for()
        assert "incomplete" in (hole.get_attribute("class") or "")
        assert hole.locator("td").all_text_contents()[2:] == [
            "–",
            "–",
            "–",
            "hole in the data: 20 s missing",
        ]
        screenshot(page, "coach-poor-signal")

        # A page opened now shows the same from what was stored.
        page.reload()
        page.wait_for_selector(f"{card} [data-role=online][data-signal=poor]")
        assert page.text_content(f"{card} [data-role=gct]") == "unavailable"
        assert page.text_content(f"{card} [data-role=cadence]") == f"{fixed(last.cadence_spm)}?"
        assert page.text_content(f"{card} [data-role=cue-reason]") == CLEO_READY_REASON

        # The athlete's phone marks the same numbers the same way.
        phone = context.new_page()
        phone.set_viewport_size(PHONE)
        phone.goto(f"{base}/athletes/cleo")
        phone.wait_for_function(
            "([sel, text]) => document.querySelector(sel)?.textContent === text",
            arg=["[data-role=cadence]", f"{fixed(last.cadence_spm)}?"],
        )
        assert phone.get_attribute("[data-role=cadence-box]", "data-trusted") == "false"
        assert phone.text_content("[data-role=gct]") == "unavailable"
        assert phone.get_attribute("[data-role=gct-box]", "data-available") == "false"
        screenshot(phone, "athlete-poor-signal", full_page=False)
        phone.close()

        # The report: the poor signal shaded, rep 2 flagged instead of summarised.
        page.goto(f"{base}/sessions/{CLEO_SESSION}")
        page.wait_for_selector("body[data-ready=true]")
        assert page.text_content("[data-role=poor-signal]") == (
            "Poor signal (shaded grey, not used in any figure): 0:20–0:40, 0:55–1:00"
        )
        assert page.text_content("[data-role=incomplete]") == (
            "Not summarised, hole in the data: rep 2"
        )
        seconds = [m.sensor_time_s for m in _of(messages, MetricsMessage)]
        first_s, last_s = seconds[0], seconds[-1]
        # Shaded from 20 s (before rep 2's own band begins at 25 s); clear before rep 1.
        # (Off the grid's vertical lines, every 2.5 s here.)
        shaded = page.evaluate(PIXELS_AT, [21.2, first_s, last_s])
        assert _mostly(shaded, POOR_BAND_RGBA), shaded
        clear = page.evaluate(PIXELS_AT, [3.7, first_s, last_s])
        assert not _mostly(clear, POOR_BAND_RGBA), clear
        cells = page.locator("[data-role=reps] tr[data-rep='2'] td").all_text_contents()
        assert cells[3:] == ["hole in the data: 20 s missing"]
        assert page.text_content("[data-role=mean-cadence]") == "176"  # rep 1 alone
        flag = page.text_content("figure.rep-plot[data-rep='2'] [data-role=flag]")
        assert flag == "hole in the data: 20 s missing: not summarised"
        assert page.text_content("figure.rep-plot[data-rep='2'] [data-role=drift]") == ""
        assert "spm" not in (page.text_content("figure.rep-plot[data-rep='2'] strong") or "")
        drift = page.text_content("figure.rep-plot[data-rep='1'] [data-role=drift]") or ""
        assert drift.startswith("drift from")
        screenshot(page, "session-poor-signal")
        assert not console.errors
    finally:
        context.close()
