// The athlete's phone: the latest cue, huge, spoken once with a beep; the rep counter and the
// recovery countdown. Initial state from the API (never spoken: old cues are not replayed on
// load), then the athlete's live stream (/api/live/{athlete}).

import { Live, connectionPill, getJSON } from "./api.js";
import { clearCue, latestCue, showCue } from "./cues.js";
import { countdown } from "./format.js";
import { shownNumbers } from "./signal.js";
import { SessionState, recoveryElapsed } from "./state.js";
import { Sound } from "./sound.js";

const TICK_MS = 250;
const PHASES = {
  warmup: "Warm-up",
  get_ready: "Get ready",
  rep: "Stride!",
  recovery: "Recovery",
  cooldown: "Cool-down",
  done: "Done",
  easy: "Easy",
};

const athleteId = decodeURIComponent(location.pathname.split("/")[2] ?? "");
const role = (name) => document.querySelector(`[data-role="${name}"]`);
const cueElement = role("cue");
const sound = new Sound(document.getElementById("sound"));
const spoken = new Set(); // cue ids said, or known before the page followed them live
let sessionId = null;
let newest_ms = -Infinity;
let state = new SessionState();

role("name").textContent = athleteId;
document.title = `${athleteId} · Stridecue`;

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function follow(id) {
  if (id === sessionId) return;
  sessionId = id;
  newest_ms = -Infinity;
  state = new SessionState();
  clearCue(cueElement, "");
}

function numbers(metrics) {
  const shown = shownNumbers(metrics);
  setText(role("cadence"), shown.cadence);
  role("cadence-box").dataset.trusted = String(!shown.cadenceUncertain);
  setText(role("gct"), shown.gct);
  role("gct-box").dataset.available = String(!shown.gctUnavailable);
  role("gct-box").dataset.trusted = String(!shown.gctUncertain);
}

function render() {
  const phase = state.session?.state;
  setText(role("state"), PHASES[phase] ?? phase ?? "–");
  document.body.dataset.state = phase ?? "";
  setText(role("rep-counter"), state.counter());
  const remaining_s = state.remaining_s();
  setText(role("countdown"), remaining_s == null ? "" : countdown(remaining_s));
}

async function load() {
  const athlete = (await getJSON("/api/athletes")).find((a) => a.id === athleteId);
  // No message from this athlete yet (the phone is ready before the run): wait for the stream.
  if (!athlete?.current_session_id) return;
  const base = `/api/sessions/${encodeURIComponent(athlete.current_session_id)}`;
  const [session, cues, metrics] = await Promise.all(
    ["", "/cues", "/metrics"].map((part) => getJSON(base + part)),
  );
  follow(session.id);
  newest_ms = Math.max(newest_ms, Date.parse(session.last_at));
  state.fromRow(session, recoveryElapsed(session, cues, metrics));
  for (const cue of cues) spoken.add(cue.id);
  const cue = latestCue(cues);
  if (cue) showCue(cueElement, cue);
  if (metrics.length) numbers(metrics[metrics.length - 1]);
  render();
}

function apply({ athlete_id, kind, message }) {
  if (athlete_id !== athleteId) return;
  const wall_ms = Date.parse(message.wall_time);
  if (message.session_id !== sessionId) {
    if (sessionId != null && !(wall_ms >= newest_ms)) return; // a late message of an old session
    follow(message.session_id);
  }
  newest_ms = Math.max(newest_ms, wall_ms);
  if (kind === "cues") {
    if (showCue(cueElement, message) && !spoken.has(message.id)) {
      spoken.add(message.id);
      sound.say(message);
    }
  } else if (kind === "session") {
    state.apply(message);
    render();
  } else if (kind === "metrics") {
    numbers(message);
  }
}

setInterval(render, TICK_MS);
new Live(`/api/live/${encodeURIComponent(athleteId)}`, {
  load,
  apply,
  status: connectionPill(document.getElementById("connection")),
}).start();
