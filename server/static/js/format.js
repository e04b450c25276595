// Numbers, times and session states as the pages show them: one place, so every page reads
// the same ("rep 2 of 8", "recovery 1:23", "182 spm").

export const DASH = "–";
const MINUS = "−";

/** A count-down clock, m:ss, rounded up: it shows 0:00 only when the time is up. */
export function countdown(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return DASH;
  return clock(Math.ceil(Math.max(0, seconds) - 1e-9));
}

/** Elapsed time, m:ss (h:mm:ss past an hour), rounded down. */
export function elapsed(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return DASH;
  return clock(Math.floor(Math.max(0, seconds)));
}

function clock(whole) {
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A value with `digits` decimals, or a dash when unknown. */
export function number(value, digits = 0) {
  return value == null || !Number.isFinite(value) ? DASH : value.toFixed(digits);
}

/** A difference with its sign (a real minus sign), e.g. "+6.2" or "−1.0". */
export function signed(value, digits = 1) {
  if (value == null || !Number.isFinite(value)) return DASH;
  const text = Math.abs(value).toFixed(digits);
  if (Number(text) === 0) return text;
  return (value > 0 ? "+" : MINUS) + text;
}

/** "rep 3 of 8", or "rep 3" when the number of reps is not planned (auto mode). */
function repOf(k, reps) {
  return reps ? `rep ${k} of ${reps}` : `rep ${k}`;
}

/**
 * The session's state in words: warm-up, get ready: rep k of N, rep k of N, recovery m:ss,
 * cool-down, done (cued plan); easy, rep k (auto). `remaining_s`: the recovery left now.
 */
export function stateText(session, remaining_s) {
  if (!session || !session.state) return DASH;
  const { state, rep, reps } = session;
  switch (state) {
    case "warmup":
      return "warm-up";
    case "get_ready":
      return `get ready: ${repOf(rep + 1, reps)}`;
    case "rep":
      return repOf(rep, reps);
    case "recovery":
      return remaining_s == null ? "recovery" : `recovery ${countdown(remaining_s)}`;
    case "cooldown":
      return "cool-down";
    case "done":
      return "done";
    case "easy":
      return "easy";
    default:
      return state;
  }
}

/** The athlete's rep counter: which rep is on, or how many are done. */
export function repCounter(session) {
  if (!session || !session.state) return DASH;
  const { state, rep, reps } = session;
  const of = reps ? ` of ${reps}` : "";
  switch (state) {
    case "warmup":
      return reps ? `${reps} reps after the warm-up` : "warm-up";
    case "get_ready":
      return `Rep ${rep + 1}${of}`;
    case "rep":
      return `Rep ${rep}${of}`;
    case "recovery":
      return `Rep ${rep}${of} done`;
    default:
      if (reps) return `${rep} of ${reps} reps done`;
      return rep === 1 ? "1 rep done" : `${rep} reps done`;
  }
}

/** "07:30" local time of an ISO date, with the day when it is not today. */
export function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return DASH;
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = new Date().toDateString() === date.toDateString();
  if (today) return time;
  const day = date.toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" });
  return `${day} ${time}`;
}

/** How long ago, in words short enough for a card: "now", "12 s ago", "3 min ago". */
export function ago(ms) {
  if (ms == null || !Number.isFinite(ms)) return "";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 2) return "now";
  if (s < 60) return `${s} s ago`;
  return `${Math.floor(s / 60)} min ago`;
}
