// Cadence and contact-time charts with uPlot (vendored, /static/vendor/uplot): a scrolling live
// chart per athlete, a whole-session overview with the reps shaded, and one plot per rep with
// the rep's linear trends (the drift). Cadence on the left axis, contact time on the right.
// Only trusted seconds are drawn; the spans of poor signal between them are shaded grey.

import { elapsed, number } from "./format.js";
import { trustedValue, untrustedSpans } from "./signal.js";

const uPlot = window.uPlot;
export const CADENCE = "#1c64d6";
export const GCT = "#d9480f";
const GRID = "#e6e8eb";
const AXIS = "#4a4f55";
const REP_BAND = "rgba(28, 100, 214, 0.09)";
const FLAGGED_BAND = "rgba(224, 49, 49, 0.16)";
const RAMP_BAND = "rgba(73, 80, 87, 0.10)";
export const POOR_BAND = "rgba(134, 142, 150, 0.35)";

/** Bands of the reps' time spans, red when the fatigue rule flagged the rep. */
function repBands(reps) {
  return reps.map((r) => ({
    start_s: r.start_s,
    end_s: r.end_s,
    color: r.fatigue_flag ? FLAGGED_BAND : REP_BAND,
  }));
}

/** Bands of the spans of poor signal (untrusted seconds), `offset_s` earlier. */
function poorBands(rows, offset_s = 0) {
  return untrustedSpans(rows).map((span) => ({
    start_s: span.start_s - offset_s,
    end_s: span.end_s - offset_s,
    color: POOR_BAND,
  }));
}

/** Least-squares line through the points whose y is known: {slope, intercept} or null. */
export function linearFit(xs, ys) {
  let n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i], y = ys[i];
    if (x == null || y == null) continue;
    n += 1; sx += x; sy += y; sxx += x * x; sxy += x * y;
  }
  const det = n * sxx - sx * sx;
  if (n < 2 || det === 0) return null;
  const slope = (n * sxy - sx * sy) / det;
  return { slope, intercept: (sy - slope * sx) / n };
}

function padded(pad, fallback) {
  return (u, min, max) =>
    min == null || max == null ? fallback : [Math.floor(min - pad), Math.ceil(max + pad)];
}

function options({ width, height, legend, xValue, xRange, series, bands }) {
  return {
    width,
    height,
    legend: { show: legend },
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: {
      x: { time: false, ...(xRange ? { range: xRange } : {}) },
      spm: { range: padded(4, [150, 200]) },
      ms: { range: padded(10, [180, 300]) },
    },
    series: [{ label: "time", value: (u, v) => (v == null ? "–" : xValue(v)) }, ...series],
    axes: [
      {
        stroke: AXIS,
        grid: { stroke: GRID },
        ticks: { stroke: GRID },
        values: (u, splits) => splits.map(xValue),
      },
      { scale: "spm", stroke: CADENCE, grid: { stroke: GRID }, ticks: { stroke: GRID }, size: 44 },
      { scale: "ms", side: 1, stroke: GCT, grid: { show: false }, ticks: { stroke: GRID }, size: 44 },
    ],
    hooks: bands ? { drawClear: [(u) => shade(u, bands())] } : {},
  };
}

function cadenceSeries(extra = {}) {
  return { label: "Cadence", scale: "spm", stroke: CADENCE, width: 2, spanGaps: false,
    value: (u, v) => (v == null ? "–" : `${number(v)} spm`), ...extra };
}

function gctSeries(extra = {}) {
  return { label: "Contact", scale: "ms", stroke: GCT, width: 2, spanGaps: false,
    value: (u, v) => (v == null ? "–" : `${number(v)} ms`), ...extra };
}

/** Shade each band [start_s, end_s] under the series. */
function shade(u, bands) {
  const { ctx, bbox } = u;
  ctx.save();
  for (const band of bands) {
    const x0 = Math.max(bbox.left, u.valToPos(band.start_s, "x", true));
    const x1 = Math.min(bbox.left + bbox.width, u.valToPos(band.end_s, "x", true));
    if (!(x1 > x0)) continue;
    ctx.fillStyle = band.color;
    ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
  }
  ctx.restore();
}

/** Keep the plot as wide as its container. */
function fit(element, plot, height) {
  const observer = new ResizeObserver(() => {
    const width = Math.floor(element.clientWidth);
    if (width > 0 && width !== plot.width) plot.setSize({ width, height });
  });
  observer.observe(element);
}

function widthOf(element) {
  return Math.max(240, Math.floor(element.clientWidth) || 320);
}

/** The last `window_s` seconds of one athlete's cadence and contact time, scrolling. */
export class LiveChart {
  constructor(element, { window_s = 300, height = 150 } = {}) {
    this.window_s = window_s;
    this.t = [];
    this.cadence = [];
    this.gct = [];
    this.rows = []; // {sensor_time_s, trusted}: the poor-signal spans
    this.bands = [];
    const xRange = (u, min, max) => {
      if (min == null || max == null) return [0, window_s];
      return [Math.max(min, max - window_s), Math.max(max, min + 1)];
    };
    const opts = options({
      width: widthOf(element), height, legend: false, xValue: elapsed, xRange,
      series: [cadenceSeries(), gctSeries()], bands: () => [...this.bands, ...poorBands(this.rows)],
    });
    this.plot = new uPlot(opts, [this.t, this.cadence, this.gct], element);
    fit(element, this.plot, height);
  }

  /** Replace the data with rows of the API ({sensor_time_s, cadence_spm, gct_ms}). */
  set(rows) {
    this.t.length = this.cadence.length = this.gct.length = this.rows.length = 0;
    for (const row of rows) this.add(row);
    this.redraw();
  }

  /** One new point; an older or repeated time is ignored. */
  push(row) {
    if (this.add(row)) this.redraw();
  }

  setReps(reps) {
    this.bands = repBands(reps);
    this.plot.redraw(false);
  }

  add(row) {
    const t = row.sensor_time_s;
    if (this.t.length && t <= this.t[this.t.length - 1]) return false;
    this.t.push(t);
    this.cadence.push(trustedValue(row, "cadence_spm"));
    this.gct.push(trustedValue(row, "gct_ms"));
    this.rows.push({ sensor_time_s: t, trusted: row.trusted });
    return true;
  }

  redraw() {
    const oldest = this.t.length ? this.t[this.t.length - 1] - this.window_s * 1.2 : 0;
    let drop = 0;
    while (drop < this.t.length && this.t[drop] < oldest) drop++;
    if (drop) for (const array of [this.t, this.cadence, this.gct, this.rows]) array.splice(0, drop);
    this.plot.setData([this.t, this.cadence, this.gct]);
  }
}

/** A whole session: cadence and contact time over time, the reps and the poor signal shaded. */
export function overviewChart(element, rows, reps, height = 220) {
  const data = [
    rows.map((r) => r.sensor_time_s),
    rows.map((r) => trustedValue(r, "cadence_spm")),
    rows.map((r) => trustedValue(r, "gct_ms")),
  ];
  const opts = options({
    width: widthOf(element), height, legend: true, xValue: elapsed,
    series: [cadenceSeries(), gctSeries()], bands: () => [...repBands(reps), ...poorBands(rows)],
  });
  const plot = new uPlot(opts, data, element);
  fit(element, plot, height);
  return plot;
}

/**
 * One rep: x = seconds into the rep, cadence and contact time of its trusted seconds, and each
 * one's linear trend (dashed) over the rep's plateau, from `plateau_s` into the rep (the ramp
 * before it is shaded: a trend through the acceleration would measure the start, not the
 * drift). A rep with a hole (`rep.complete` false) gets no trend. Returns the drift over the
 * plateau by the trends: {cadence_spm, gct_ms} (null when unknown).
 */
export function repChart(element, rep, rows, plateau_s, height = 190) {
  const x = rows.map((r) => r.sensor_time_s - rep.start_s);
  const cadence = rows.map((r) => trustedValue(r, "cadence_spm"));
  const gct = rows.map((r) => trustedValue(r, "gct_ms"));
  const onPlateau = (values) => values.map((v, i) => (x[i] >= plateau_s ? v : null));
  const cadenceFit = rep.complete ? linearFit(x, onPlateau(cadence)) : null;
  const gctFit = rep.complete ? linearFit(x, onPlateau(gct)) : null;
  const line = (f) => x.map((v) => (f && v >= plateau_s ? f.intercept + f.slope * v : null));
  const span = rep.end_s - rep.start_s;
  const opts = options({
    width: widthOf(element), height, legend: true, xValue: (v) => `${number(v)} s`,
    series: [
      cadenceSeries(),
      gctSeries(),
      cadenceSeries({ label: "Cadence trend", width: 1.5, dash: [6, 4], points: { show: false } }),
      gctSeries({ label: "Contact trend", width: 1.5, dash: [6, 4], points: { show: false } }),
    ],
    xRange: () => [0, span],
    bands: () => [{ start_s: 0, end_s: plateau_s, color: RAMP_BAND }, ...poorBands(rows, rep.start_s)],
  });
  const plot = new uPlot(opts, [x, cadence, gct, line(cadenceFit), line(gctFit)], element);
  fit(element, plot, height);
  const plateau = Math.max(0, span - plateau_s);
  return {
    cadence_spm: cadenceFit ? cadenceFit.slope * plateau : null,
    gct_ms: gctFit ? gctFit.slope * plateau : null,
  };
}
