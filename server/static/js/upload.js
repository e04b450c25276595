// "Add a recorded run": send a .log file to POST /api/uploads, follow the replay's progress,
// and link to the stored session when it is done.

import { getJSON, post } from "./api.js";

const POLL_MS = 500;

async function detail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `HTTP ${response.status}`;
  }
}

export function uploadForm(form) {
  if (!form) return;
  const progress = document.getElementById("upload-progress");
  const message = document.getElementById("upload-message");
  const say = (text) => {
    message.textContent = text;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const file = data.get("file");
    const query = new URLSearchParams({ athlete_id: String(data.get("athlete")) });
    if (data.get("template")) query.set("template", String(data.get("template")));
    const button = form.querySelector("button");
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    say(`Uploading ${file.name}…`);
    try {
      const response = await post(`/api/uploads?${query}`, file);
      if (response.status !== 202) {
        say(`Upload refused: ${await detail(response)}`);
        return;
      }
      let upload = await response.json();
      while (upload.state === "queued" || upload.state === "running") {
        progress.value = upload.progress ?? 0;
        say(upload.state === "queued" ? "Waiting for the replay to start…" : "Replaying the run…");
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        upload = await getJSON(`/api/uploads/${encodeURIComponent(upload.id)}`);
      }
      progress.value = 1;
      if (upload.state === "done" && upload.session_id) {
        message.replaceChildren(
          "Done: ",
          Object.assign(document.createElement("a"), {
            href: `/sessions/${encodeURIComponent(upload.session_id)}`,
            textContent: "open the session report",
          }),
        );
        form.reset();
      } else {
        say(`The replay failed: ${upload.error ?? "unknown error"}`);
      }
    } catch (error) {
      say(`Upload failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
}
