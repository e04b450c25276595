// The companion's API as the pages use it: JSON over fetch with the login cookie, and the live
// WebSocket that reconnects with backoff and reloads the page's state after every (re)connect,
// so that nothing published while it was away is missed.

/** Back to the login page (the cookie is missing, wrong or expired). */
export function signIn() {
  location.replace("/");
}

/** GET a JSON document of the API; a 401 sends the browser to the login page. */
export async function getJSON(path) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (response.status === 401) {
    signIn();
    throw new Error("signed out");
  }
  if (!response.ok) {
    const error = new Error(`${path}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

/** POST to the API (same origin: the server checks the Origin of cookie requests). */
export async function post(path, body, contentType = "application/octet-stream") {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": contentType, Accept: "application/json" },
    body,
  });
  if (response.status === 401) {
    signIn();
    throw new Error("signed out");
  }
  return response;
}

export async function signOut() {
  await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  signIn();
}

/** Wire a "Sign out" button, when the page has one. */
export function logoutButton(element) {
  if (element) element.addEventListener("click", () => signOut());
}

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;
const FALLBACK_LOAD_MS = 3_000;

/**
 * The live stream of one athlete (or the team), with the page's state kept whole.
 *
 * `load()` fetches the page's state from the API; `apply(item)` applies one live message
 * (`{athlete_id, kind, message}`) and must be idempotent, because a message can arrive both in
 * a load and on the stream. After each (re)connect the stream calls `load()` and holds the
 * messages that arrive meanwhile, then applies them on top: no gap, no going back.
 */
export class Live {
  constructor(path, { load, apply, status = () => {} }) {
    this.path = path;
    this.load = load;
    this.apply = apply;
    this.status = status;
    this.retries = 0;
    this.held = null; // messages received while a load runs
    this.opened = false;
    this.socket = null;
  }

  start() {
    this.connect();
    // A proxy that blocks WebSockets must not leave the page empty.
    setTimeout(() => {
      if (!this.opened) this.reload();
    }, FALLBACK_LOAD_MS);
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${this.path}`);
    this.socket = socket;
    this.status("connecting");
    socket.addEventListener("open", () => {
      this.opened = true;
      this.retries = 0;
      this.status("live");
      this.reload();
    });
    socket.addEventListener("message", (event) => {
      let item;
      try {
        item = JSON.parse(event.data);
      } catch (error) {
        console.warn("ignored a live message that is not JSON", error);
        return;
      }
      if (this.held) this.held.push(item);
      else this.safely(item);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.status("reconnecting");
      const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.retries);
      this.retries += 1;
      // A refused handshake looks like any lost connection: ask the API whether we are
      // still signed in (getJSON goes to the login page on 401).
      if (this.retries > 1) getJSON("/api/athletes").catch(() => {});
      setTimeout(() => this.connect(), delay * (0.5 + Math.random() / 2));
    });
  }

  async reload() {
    const held = [];
    this.held = held;
    try {
      await this.load();
    } catch (error) {
      console.error("could not load the page's state", error);
    } finally {
      if (this.held === held) this.held = null;
      for (const item of held) this.safely(item);
    }
  }

  safely(item) {
    try {
      this.apply(item);
    } catch (error) {
      console.error("could not apply a live message", item, error);
    }
  }
}

/** Show the stream's state in a header pill (`data-state`: connecting, live, reconnecting). */
export function connectionPill(element) {
  const labels = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" };
  return (state) => {
    if (!element) return;
    element.dataset.state = state;
    element.textContent = labels[state] ?? state;
  };
}
