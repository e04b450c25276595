// A stored session's report: the summary, the whole session with its reps and its spans of poor
// signal shaded, the rep table, one plot per rep (x = seconds into the rep) with the linear
// trends of cadence and contact time (the drift, labelled), the cue log, and the CSV and FIT
// exports. Per-rep figures come from trusted seconds only; a rep with a hole in its data is
// flagged, never summarised.

import { getJSON } from "./api.js";
import { overviewChart, repChart } from "./charts.js";
import { DASH, elapsed, number, signed, when } from "./format.js";
import { holeText, untrustedSpans } from "./signal.js";

const sessionId = decodeURIComponent(location.pathname.split("/")[2] ?? "");
const base = `/api/sessions/${encodeURIComponent(sessionId)}`;
const role = (name, root = document) => root.querySelector(`[data-role="${name}"]`);

function cell(text) {
  return Object.assign(document.createElement("td"), { textContent: text });
}

function summary({ session, summary: sums }, metrics) {
  document.title = `${session.athlete_id}, ${when(session.started_at)} · Stridecue`;
  role("title").textContent = `${session.athlete_id} · ${when(session.started_at)}`;
  const parts = [session.template ? `plan ${session.template}` : "auto rep detection"];
  if (metrics.length) {
    parts.push(`${elapsed(metrics[metrics.length - 1].sensor_time_s - metrics[0].sensor_time_s)} of data`);
  }
  parts.push(`state ${session.state ?? DASH}`);
  role("subtitle").textContent = parts.join(" · ");
  const spans = untrustedSpans(metrics);
  role("poor-signal").textContent = spans.length
    ? `Poor signal (shaded grey, not used in any figure): ${spans.map(spanText).join(", ")}`
    : "";
  const holes = sums.incomplete_reps;
  role("incomplete").textContent = holes.length
    ? `Not summarised, hole in the data: rep ${holes.join(", ")}`
    : "";
  role("reps-done").textContent = sums.reps_planned
    ? `${sums.reps_done} / ${sums.reps_planned}`
    : String(sums.reps_done);
  role("mean-cadence").textContent = number(sums.mean_cadence_spm);
  role("mean-gct").textContent = number(sums.mean_gct_ms);
  const flagged = sums.flagged_reps;
  role("flagged").textContent = String(flagged.length);
  role("flagged-label").textContent =
    flagged.length === 0 ? "reps flagged for fatigue" : `flagged for fatigue: rep ${flagged.join(", ")}`;
  role("flagged").parentElement.classList.toggle("alert", flagged.length > 0);
}

function spanText({ start_s, end_s }) {
  return `${elapsed(start_s)}–${elapsed(end_s)}`;
}

function repTable(reps) {
  const rows = reps.map((rep) => {
    const row = document.createElement("tr");
    row.dataset.rep = String(rep.rep);
    row.classList.toggle("flagged", rep.fatigue_flag);
    row.classList.toggle("incomplete", !rep.complete);
    row.append(cell(String(rep.rep)), cell(elapsed(rep.start_s)), cell(`${number(rep.duration_s, 1)} s`));
    if (!rep.complete) {
      const hole = cell(holeText(rep));
      hole.colSpan = 6;
      row.append(hole);
      return row;
    }
    row.append(
      cell(`${number(rep.mean_cadence_spm)} spm`),
      cell(`${number(rep.mean_gct_ms)} ms`),
      cell(rep.gct_drift_ms == null ? DASH : `${signed(rep.gct_drift_ms)} ms`),
      cell(rep.cadence_cv_pct == null ? DASH : `${number(rep.cadence_cv_pct, 1)} %`),
      cell(rep.time_to_stride_cadence_s == null ? DASH : `${number(rep.time_to_stride_cadence_s, 1)} s`),
      cell(rep.fatigue_flag ? rep.fatigue_reason || "flagged" : ""),
    );
    return row;
  });
  role("reps").tBodies[0].replaceChildren(...rows);
}

// The per-second metrics average the last 7 contacts: they reach the rep's level that much
// after the steps do.
const ROLLING_CONTACTS = 7;

/**
 * Seconds into the rep where its plateau begins in the per-second metrics: the engine's own
 * plateau (three times the time to stride cadence, see dsp/reps.py) plus the metrics' lag.
 */
function plateauStart(rep) {
  const lag_s = rep.mean_cadence_spm ? ((ROLLING_CONTACTS - 1) * 60) / rep.mean_cadence_spm : 0;
  const start_s = 3 * (rep.time_to_stride_cadence_s ?? 0) + lag_s;
  return Math.min(start_s, (rep.end_s - rep.start_s) / 2); // keep half the rep at least
}

/** Mean of the plateau's first and last thirds (trusted seconds): the drift, without a fit. */
function thirds(rows, key, from_s, to_s) {
  const span = (to_s - from_s) / 3;
  const mean = (lo, hi) => {
    const values = rows
      .filter((r) => r.trusted && r.sensor_time_s >= lo && r.sensor_time_s <= hi && r[key] != null)
      .map((r) => r[key]);
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  };
  return [mean(from_s, from_s + span), mean(to_s - span, to_s)];
}

function repPlots(reps, metrics) {
  const container = role("rep-plots");
  container.replaceChildren();
  for (const rep of reps) {
    const rows = metrics.filter((m) => m.sensor_time_s >= rep.start_s && m.sensor_time_s <= rep.end_s);
    const figure = document.createElement("figure");
    figure.className = "rep-plot";
    figure.dataset.rep = String(rep.rep);
    figure.classList.toggle("flagged", rep.fatigue_flag);
    figure.classList.toggle("incomplete", !rep.complete);
    const caption = document.createElement("figcaption");
    const title = document.createElement("strong");
    title.textContent = rep.complete
      ? `Rep ${rep.rep} · ${number(rep.duration_s, 1)} s · ` +
        `${number(rep.mean_cadence_spm)} spm · ${number(rep.mean_gct_ms)} ms`
      : `Rep ${rep.rep} · ${number(rep.duration_s, 1)} s`;
    const drift = document.createElement("span");
    drift.className = "drift";
    drift.dataset.role = "drift";
    const flag = document.createElement("span");
    flag.className = "flag";
    flag.dataset.role = "flag";
    if (!rep.complete) flag.textContent = `${holeText(rep)}: not summarised`;
    else flag.textContent = rep.fatigue_flag ? rep.fatigue_reason || "flagged" : "";
    caption.append(title, drift, flag);
    const chart = document.createElement("div");
    chart.className = "chart";
    figure.append(caption, chart);
    container.append(figure);
    if (!rep.complete) {
      // What was measured, shaded where it was not; no trend.
      if (rows.length >= 2) repChart(chart, rep, rows, 0);
      continue;
    }
    if (rows.filter((r) => r.trusted).length < 2) {
      drift.textContent = "too few points for a trend";
      continue;
    }
    const plateau_s = plateauStart(rep);
    const trend = repChart(chart, rep, rows, plateau_s);
    const [c0, c1] = thirds(rows, "cadence_spm", rep.start_s + plateau_s, rep.end_s);
    const [g0, g1] = thirds(rows, "gct_ms", rep.start_s + plateau_s, rep.end_s);
    const pair = (a, b) => (a == null || b == null ? DASH : `${number(a)} → ${number(b)}`);
    drift.textContent =
      `drift from ${number(plateau_s, 1)} s (linear trend): cadence ${signed(trend.cadence_spm)} spm, ` +
      `contact ${signed(trend.gct_ms)} ms · first → last third: ${pair(c0, c1)} spm, ${pair(g0, g1)} ms`;
  }
}

function cueLog(cues) {
  const items = cues.map((cue) => {
    const item = document.createElement("li");
    item.dataset.kind = cue.kind;
    const at = Object.assign(document.createElement("time"), { textContent: elapsed(cue.sensor_time_s) });
    item.append(at, ` ${cue.text}`);
    if (cue.reason) item.title = cue.reason;
    return item;
  });
  role("cues").replaceChildren(...items);
}

async function main() {
  role("export-csv").href = `${base}/export.csv`;
  role("export-fit").href = `${base}/export.fit`;
  const [report, metrics, cues] = await Promise.all([
    getJSON(`${base}/report`),
    getJSON(`${base}/metrics`),
    getJSON(`${base}/cues`),
  ]);
  summary(report, metrics);
  repTable(report.reps);
  if (metrics.length) overviewChart(role("overview"), metrics, report.reps);
  else role("overview").textContent = "No metrics stored for this session.";
  repPlots(report.reps, metrics);
  cueLog(cues);
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  role("title").textContent = "Could not load this session";
});
