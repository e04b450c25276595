// Showing a cue: the element's text and attributes (`data-cue-id`, `data-kind`), and the page's
// record of when each cue was first shown (`window.stridecueShown`, Unix epoch ms), which the
// browser tests and the end-to-end benchmark read to measure publication → screen latency.

window.stridecueShown = window.stridecueShown || [];
const recorded = new Set();

/** Show `cue` in `element`; false when it already shows it. */
export function showCue(element, cue) {
  if (!cue || element.dataset.cueId === cue.id) return false;
  element.textContent = cue.text;
  element.dataset.cueId = cue.id;
  element.dataset.kind = cue.kind;
  if (!recorded.has(cue.id)) {
    recorded.add(cue.id);
    window.stridecueShown.push({ id: cue.id, shown_ms: performance.timeOrigin + performance.now() });
  }
  return true;
}

/** Forget the cue an element shows (a new session began). */
export function clearCue(element, text = "–") {
  element.textContent = text;
  element.dataset.cueId = "";
  element.dataset.kind = "";
}

/** The cue of highest `seq` in a list from the API, or null. */
export function latestCue(cues) {
  return cues.reduce((best, cue) => (best == null || cue.seq > best.seq ? cue : best), null);
}
