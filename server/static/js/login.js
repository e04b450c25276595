// The login page: the token comes from the link's fragment (`/#token=…`, never sent to the
// server by the browser, so it is in no server log and no Referer) or from the form. It is
// posted once as a bearer header to /api/login, which answers with an HttpOnly cookie: from
// then on the pages use the cookie and no script holds the token.

const form = document.getElementById("login-form");
const message = document.getElementById("login-message");
// Where to go once signed in: the coach view, or one of the pages named in `next=`.
const NEXT = /^\/(coach|athletes\/[a-z0-9][a-z0-9_-]{0,63}|sessions\/[A-Za-z0-9._~%-]{1,64})$/;

function destination(next) {
  return next && NEXT.test(next) ? next : "/coach";
}

async function signIn(token, next) {
  message.textContent = "Signing in…";
  message.dataset.kind = "";
  let response;
  try {
    response = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { Authorization: `Bearer ${token}` },
    });
  } catch {
    message.textContent = "The server cannot be reached: is stridecue serve running?";
    message.dataset.kind = "error";
    return;
  }
  if (response.status === 204) {
    location.replace(destination(next));
    return;
  }
  let detail = "";
  try {
    detail = (await response.json()).detail ?? "";
  } catch {
    // not JSON: the status says enough
  }
  message.textContent =
    response.status === 401
      ? "That token was not accepted. Use the one stridecue serve printed."
      : `Sign-in failed (HTTP ${response.status}). ${detail}`;
  message.dataset.kind = "error";
}

let next = new URLSearchParams(location.search).get("next");

/** Sign in with the token of the fragment, if any; the fragment leaves the address bar. */
function fromFragment() {
  if (!location.hash) return;
  const fragment = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", location.pathname + location.search);
  next = fragment.get("next") ?? next;
  const token = fragment.get("token");
  if (token) signIn(token, next);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = form.elements.token.value.trim();
  if (value) signIn(value, next);
});
// A link opened in a tab already on this page changes only the fragment: no new page load.
window.addEventListener("hashchange", fromFragment);
fromFragment();
