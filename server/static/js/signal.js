// How far the pages trust what they show. The publisher says, for every second, whether its
// cadence can be shown as fact (`trusted`); the pages never recompute that, they only decide
// how to show it: a card's "poor signal" over the last seconds, greyed numbers, shaded spans
// on the charts, and reps with a hole flagged instead of summarised.

import { number } from "./format.js";

// The card calls the signal poor when, over the last POOR_WINDOW_S sensor seconds, most
// seconds were untrusted or more than MAX_LOST_FRACTION of the samples were lost (the share
// above which the engine itself stops trusting a second).
export const POOR_WINDOW_S = 5;
export const MAX_LOST_FRACTION = 0.2;

const ACTIVITY = { still: "standing", walking: "walking", running: "running" };

/** The athlete's activity in the words of the pages, or "" when unknown. */
export function activityText(activity) {
  return ACTIVITY[activity] ?? "";
}

/** The latest seconds of one athlete's metrics, to tell a poor signal from a good one. */
export class SignalWindow {
  constructor(window_s = POOR_WINDOW_S) {
    this.window_s = window_s;
    this.rows = [];
  }

  clear() {
    this.rows = [];
  }

  push(row) {
    const last = this.rows[this.rows.length - 1];
    if (last && row.sensor_time_s <= last.sensor_time_s) return;
    this.rows.push(row);
    const oldest = row.sensor_time_s - this.window_s;
    while (this.rows.length && this.rows[0].sensor_time_s <= oldest) this.rows.shift();
  }

  /** Whether the window's seconds are mostly untrusted or lost too many samples. */
  poor() {
    const n = this.rows.length;
    if (!n) return false;
    const untrusted = this.rows.filter((r) => !r.trusted).length;
    const lost = this.rows.reduce((sum, r) => sum + (r.lost_fraction ?? 0), 0) / n;
    return 2 * untrusted > n || lost > MAX_LOST_FRACTION;
  }
}

/**
 * The spans of consecutive untrusted seconds, [{start_s, end_s}] (sensor seconds). A row at
 * `sensor_time_s` describes the second that ended then.
 */
export function untrustedSpans(rows) {
  const spans = [];
  for (const row of rows) {
    if (row.trusted) continue;
    const start_s = row.sensor_time_s - 1;
    const last = spans[spans.length - 1];
    if (last && start_s <= last.end_s + 1e-6) last.end_s = row.sensor_time_s;
    else spans.push({ start_s, end_s: row.sensor_time_s });
  }
  return spans;
}

/** A value only when its second is trusted: what charts and per-rep figures are made of. */
export function trustedValue(row, key) {
  return row.trusted ? row[key] : null;
}

/** "hole in the data: 20 s missing", for a rep the engine flagged instead of summarising. */
export function holeText(rep) {
  return `hole in the data: ${number(rep.missing_s)} s missing`;
}

/**
 * How one second's numbers are shown, on the coach's card and the athlete's phone alike: an
 * untrusted cadence is marked "?", and a contact time the engine could not measure (the cadence
 * came from the signal's periodicity because the contacts disagreed) reads "unavailable".
 */
export function shownNumbers(metrics) {
  const untrusted = !metrics.trusted;
  const cadenceUncertain = untrusted && metrics.cadence_spm != null;
  const gctUnavailable = metrics.gct_ms == null && metrics.cadence_source === "periodicity";
  const gctUncertain = untrusted && metrics.gct_ms != null;
  return {
    cadence: number(metrics.cadence_spm) + (cadenceUncertain ? "?" : ""),
    cadenceUncertain,
    gct: gctUnavailable ? "unavailable" : number(metrics.gct_ms) + (gctUncertain ? "?" : ""),
    gctUnavailable,
    gctUncertain,
  };
}
