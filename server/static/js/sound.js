// The athlete's ears: each cue spoken (Web Speech API) after a short beep (Web Audio). Phones
// play sound only after a user gesture, so nothing sounds until the "tap to enable sound"
// button is pressed; the same tap keeps the screen awake (Wake Lock API) where supported.

const URGENT = new Set(["countdown", "go"]); // said now, cutting off whatever is being said
const PITCH_HZ = { go: 1320, rep_start: 1320, countdown: 880, ease: 520, rep_end: 520 };
const BEEP_S = 0.14;

export class Sound {
  constructor(button) {
    this.button = button;
    this.enabled = false;
    this.context = null;
    this.wakeLock = null;
    button.addEventListener("click", () => (this.enabled ? this.disable() : this.enable()));
    document.addEventListener("visibilitychange", () => {
      if (this.enabled && document.visibilityState === "visible") this.keepAwake();
    });
  }

  async enable() {
    this.enabled = true;
    this.render();
    try {
      const AudioContext = window.AudioContext || window.webkitAudioContext;
      if (AudioContext) {
        this.context ??= new AudioContext();
        await this.context.resume();
      }
    } catch (error) {
      console.warn("no Web Audio: cues are spoken without a beep", error);
    }
    this.beep(880);
    this.speak("Sound on", true);
    this.keepAwake();
  }

  disable() {
    this.enabled = false;
    if ("speechSynthesis" in window) speechSynthesis.cancel();
    this.wakeLock?.release().catch(() => {});
    this.wakeLock = null;
    this.render();
  }

  render() {
    this.button.dataset.on = String(this.enabled);
    this.button.textContent = this.enabled ? "Sound on" : "Tap to enable sound";
  }

  /** Beep and speak one cue (when sound is on). */
  say(cue) {
    if (!this.enabled) return;
    this.beep(PITCH_HZ[cue.kind] ?? 660);
    this.speak(cue.text, URGENT.has(cue.kind));
  }

  speak(text, urgent = false) {
    if (!("speechSynthesis" in window)) return;
    if (urgent) speechSynthesis.cancel();
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.rate = 1.1;
    speechSynthesis.speak(utterance);
  }

  beep(frequency_hz) {
    const context = this.context;
    if (!context || context.state !== "running") return;
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    const t0 = context.currentTime;
    oscillator.frequency.value = frequency_hz;
    gain.gain.setValueAtTime(0.0001, t0);
    gain.gain.exponentialRampToValueAtTime(0.5, t0 + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + BEEP_S);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(t0);
    oscillator.stop(t0 + BEEP_S + 0.02);
  }

  async keepAwake() {
    try {
      if ("wakeLock" in navigator && !this.wakeLock) {
        this.wakeLock = await navigator.wakeLock.request("screen");
        this.wakeLock.addEventListener("release", () => (this.wakeLock = null));
      }
    } catch {
      // Not granted (battery saver, insecure origin): the screen may dim, nothing else.
    }
  }
}
