// The coach view: one card per athlete, live. Initial state from the API, then the team's live
// stream (/api/live); the cards show the latest cue large (with its reason), cadence and contact
// time, the athlete's activity, the session state with the recovery countdown ticking locally,
// a scrolling chart and the rep table. A number the publisher does not trust is never shown as
// fact: the card says "poor signal", greys the cadence with a "?", and says "unavailable" for a
// contact time the signal cannot give.

import { Live, connectionPill, getJSON, logoutButton } from "./api.js";
import { LiveChart } from "./charts.js";
import { clearCue, latestCue, showCue } from "./cues.js";
import { DASH, ago, number, signed, stateText, when } from "./format.js";
import { SignalWindow, activityText, holeText, shownNumbers } from "./signal.js";
import { SessionState, recoveryElapsed } from "./state.js";
import { uploadForm } from "./upload.js";

const TICK_MS = 250;
const HISTORY_ROWS = 20;
const HISTORY_DELAY_MS = 1000; // a new session is stored by then; several changes, one reload

const team = document.getElementById("team");
const template = document.getElementById("athlete-card");
const cards = new Map(); // athlete id → Card

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function cells(texts) {
  return texts.map((text) => Object.assign(document.createElement("td"), { textContent: text }));
}

class Card {
  constructor(athleteId) {
    this.id = athleteId;
    this.el = template.content.firstElementChild.cloneNode(true);
    this.el.dataset.athlete = athleteId;
    this.role("name").textContent = athleteId;
    this.role("phone").href = `/athletes/${encodeURIComponent(athleteId)}`;
    const after = [...cards.values()].map((c) => c.el).find((el) => el.dataset.athlete > athleteId);
    team.insertBefore(this.el, after ?? null);
    document.getElementById("empty").hidden = true;
    this.chart = new LiveChart(this.role("chart"));
    this.state = new SessionState();
    this.sessionId = null;
    this.newest_ms = -Infinity; // wall time of the newest message of the session
    this.reps = [];
    this.cueAge = null; // () => text under the cue
    this.online = false;
    this.signal = new SignalWindow();
  }

  role(name) {
    return this.el.querySelector(`[data-role="${name}"]`);
  }

  /** Follow session `id`; false when it is already the one shown. */
  follow(id) {
    if (id === this.sessionId) return false;
    this.sessionId = id;
    this.newest_ms = -Infinity;
    this.state = new SessionState();
    this.reps = [];
    this.role("reps").tBodies[0].replaceChildren();
    this.chart.set([]);
    this.chart.setReps([]);
    clearCue(this.role("cue"));
    setText(this.role("cue-reason"), "");
    this.cueAge = null;
    this.signal.clear();
    this.showSignal();
    this.numbers({ cadence_spm: null, gct_ms: null, trusted: true, activity: null });
    this.role("report").href = `/sessions/${encodeURIComponent(id)}`;
    return true;
  }

  /** Whether a live message belongs here: its session, or a newer session that now starts. */
  accepts(message) {
    const wall_ms = Date.parse(message.wall_time);
    if (message.session_id !== this.sessionId) {
      if (this.sessionId != null && !(wall_ms >= this.newest_ms)) return false; // a late straggler
      this.follow(message.session_id);
      refreshHistory();
    }
    if (wall_ms > this.newest_ms) this.newest_ms = wall_ms;
    return true;
  }

  /** Everything from the API (a load after each (re)connect). */
  load(athlete, snapshot) {
    this.status(athlete);
    if (!snapshot) return;
    const { session, cues, reps, metrics } = snapshot;
    this.follow(session.id);
    this.newest_ms = Math.max(this.newest_ms, Date.parse(session.last_at));
    this.state.fromRow(session, recoveryElapsed(session, cues, metrics));
    this.reps = [];
    this.role("reps").tBodies[0].replaceChildren();
    for (const rep of reps) this.rep(rep);
    this.chart.set(metrics);
    for (const row of metrics) this.signal.push(row); // it keeps the latest seconds
    this.showSignal();
    const last = metrics[metrics.length - 1];
    if (last) this.numbers(last);
    const cue = latestCue(cues);
    if (cue && this.showCue(cue)) this.cueAge = () => when(cue.wall_time);
    this.tick();
  }

  status(status) {
    this.online = Boolean(status.online);
    this.role("online").dataset.online = String(this.online);
    this.showSignal();
    const device = [status.device, status.placement].filter(Boolean).join(" · ");
    setText(this.role("device"), device);
  }

  /** The dot: grey offline, green online, "poor signal" when the latest seconds are untrusted. */
  showSignal() {
    const poor = this.online && this.signal.poor();
    const dot = this.role("online");
    dot.dataset.signal = poor ? "poor" : "good";
    dot.title = poor ? "poor signal" : this.online ? "online" : "offline";
    this.role("signal").hidden = !poor;
  }

  numbers(metrics) {
    const shown = shownNumbers(metrics);
    setText(this.role("cadence"), shown.cadence);
    setText(this.role("cadence-label"), shown.cadenceUncertain ? "cadence · uncertain" : "cadence");
    this.role("cadence-box").dataset.trusted = String(!shown.cadenceUncertain);
    setText(this.role("gct"), shown.gct);
    this.role("gct-box").dataset.available = String(!shown.gctUnavailable);
    this.role("gct-box").dataset.trusted = String(!shown.gctUncertain);
    const activity = this.role("activity");
    setText(activity, activityText(metrics.activity));
    activity.dataset.activity = metrics.activity ?? "";
  }

  metrics(message) {
    this.signal.push(message);
    this.showSignal();
    this.numbers(message);
    this.chart.push(message);
  }

  /** Show a cue and its reason (a readiness or fatigue advice); false when already shown. */
  showCue(cue) {
    if (!showCue(this.role("cue"), cue)) return false;
    setText(this.role("cue-reason"), cue.reason ?? "");
    return true;
  }

  cue(message) {
    if (this.showCue(message)) {
      const received = performance.now();
      this.cueAge = () => ago(performance.now() - received);
      this.tick();
    }
  }

  rep(rep) {
    const body = this.role("reps").tBodies[0];
    let row = body.querySelector(`tr[data-rep="${rep.rep}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.rep = String(rep.rep);
      const after = [...body.rows].find((r) => Number(r.dataset.rep) > rep.rep);
      body.insertBefore(row, after ?? null);
      this.reps.push(rep);
    }
    row.classList.toggle("flagged", Boolean(rep.fatigue_flag));
    row.classList.toggle("incomplete", !rep.complete);
    // A rep with a hole is flagged, not summarised: no mean or drift, whatever was sent.
    const summary = rep.complete
      ? [
          number(rep.mean_cadence_spm),
          number(rep.mean_gct_ms),
          rep.gct_drift_ms == null ? DASH : `${signed(rep.gct_drift_ms)} ms`,
          rep.fatigue_flag ? rep.fatigue_reason || "flagged" : "",
        ]
      : [DASH, DASH, DASH, holeText(rep)];
    row.replaceChildren(...cells([String(rep.rep), `${number(rep.duration_s, 1)} s`, ...summary]));
    row.title = rep.complete ? (rep.fatigue_reason ?? "") : holeText(rep);
    this.chart.setReps(this.reps);
  }

  session(message) {
    this.state.apply(message);
    if (message.state === "done") refreshHistory();
    this.tick();
  }

  tick() {
    setText(this.role("state"), this.state.text());
    this.role("state").dataset.state = this.state.session?.state ?? "";
    if (this.cueAge) setText(this.role("cue-age"), this.cueAge());
  }
}

function cardFor(athleteId) {
  let card = cards.get(athleteId);
  if (!card) {
    card = new Card(athleteId);
    cards.set(athleteId, card);
  }
  return card;
}

function apply({ athlete_id, kind, message }) {
  const card = cardFor(athlete_id);
  if (!card.accepts(message)) return;
  switch (kind) {
    case "metrics":
      return card.metrics(message);
    case "cues":
      return card.cue(message);
    case "reps":
      return card.rep(message);
    case "session":
      return card.session(message);
    case "status":
      return card.status(message);
    default:
      return undefined; // steps: not shown here
  }
}

async function snapshot(sessionId) {
  const base = `/api/sessions/${encodeURIComponent(sessionId)}`;
  const [session, cues, reps, metrics] = await Promise.all(
    ["", "/cues", "/reps", "/metrics"].map((part) => getJSON(base + part)),
  );
  return { session, cues, reps, metrics };
}

async function load() {
  const athletes = await getJSON("/api/athletes");
  const loaded = await Promise.all(
    athletes.map(async (athlete) => {
      const session = athlete.current_session_id;
      return [athlete, session ? await snapshot(session) : null];
    }),
  );
  for (const [athlete, data] of loaded) cardFor(athlete.id).load(athlete, data);
  history(athletes).catch((error) => console.error("could not load the sessions", error));
}

let historyTimer = null;

/** Reload the sessions table soon (a session began or ended). */
function refreshHistory() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => {
    getJSON("/api/athletes")
      .then(history)
      .catch((error) => console.error("could not load the sessions", error));
  }, HISTORY_DELAY_MS);
}

async function history(athletes) {
  const lists = await Promise.all(
    athletes.map((a) => getJSON(`/api/athletes/${encodeURIComponent(a.id)}/sessions`)),
  );
  const sessions = lists.flat().sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at));
  const rows = sessions.slice(0, HISTORY_ROWS).map((s) => {
    const row = document.createElement("tr");
    const link = Object.assign(document.createElement("a"), {
      href: `/sessions/${encodeURIComponent(s.id)}`,
      textContent: "report",
    });
    const reps = s.reps ? `${s.counts.reps} of ${s.reps}` : String(s.counts.reps);
    row.replaceChildren(
      ...cells([s.athlete_id, when(s.started_at), s.template ?? "auto", reps, stateText(s, null)]),
    );
    const last = document.createElement("td");
    last.append(link);
    row.append(last);
    return row;
  });
  document.getElementById("history").replaceChildren(...rows);
}

logoutButton(document.getElementById("logout"));
uploadForm(document.getElementById("upload"));
setInterval(() => cards.forEach((card) => card.tick()), TICK_MS);
new Live("/api/live", { load, apply, status: connectionPill(document.getElementById("connection")) }).start();
