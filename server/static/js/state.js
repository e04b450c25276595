// One athlete's current session as a page knows it: the latest session message, and the
// recovery countdown ticking locally between two of them (they come only when the state or the
// rep changes).

import { repCounter, stateText } from "./format.js";

export class SessionState {
  constructor() {
    this.session = null;
    this.remaining = null; // recovery left when `since` was taken, s
    this.since = 0; // performance.now() of that moment
  }

  /** The API's session row; `elapsed_s`: sensor seconds since its state began (an estimate). */
  fromRow(row, elapsed_s = 0) {
    this.set(row, row.recovery_remaining_s == null ? null : row.recovery_remaining_s - elapsed_s);
  }

  /** A live session message. */
  apply(message) {
    this.set(message, message.recovery_remaining_s);
  }

  set({ state, rep, reps }, remaining_s) {
    this.session = state ? { state, rep: rep ?? 0, reps: reps ?? null } : null;
    this.remaining = remaining_s ?? null;
    this.since = performance.now();
  }

  /** The recovery left now (s), or null outside a recovery. */
  remaining_s() {
    if (this.session?.state !== "recovery" || this.remaining == null) return null;
    return Math.max(0, this.remaining - (performance.now() - this.since) / 1000);
  }

  text() {
    return stateText(this.session, this.remaining_s());
  }

  counter() {
    return repCounter(this.session);
  }
}

/**
 * How long (sensor s) a session loaded from the API has been in its recovery: the state began
 * with the rep's "rep done" cue (emitted together), the newest metrics tell the time now.
 */
export function recoveryElapsed(session, cues, metrics) {
  if (session?.state !== "recovery" || !metrics.length) return 0;
  const ended = cues.filter((c) => c.kind === "rep_end" && c.rep === session.rep).pop();
  if (!ended) return 0;
  return Math.max(0, metrics[metrics.length - 1].sensor_time_s - ended.sensor_time_s);
}
