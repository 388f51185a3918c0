// imaged console: small progressive enhancements. Every page works without this file; the
// Content-Security-Policy allows only this script, so nothing runs inline.

// Forms that change something serious ask first: <form data-confirm="Delete this image?">.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// The filter bar applies a select's choice at once.
for (const select of document.querySelectorAll("form.filters select")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}

// Uploads: the file goes in PATCHes of up to 16 MiB to the console's tus calls (/console/images/<id>/uploads),
// each acknowledged one durable on the server. A drop is retried from the offset the server gives (HEAD); a
// reload finds the upload again (localStorage, per image and file) once the same file is chosen.
const panel = document.getElementById("upload");
if (panel) {
  const image = panel.dataset.image;
  const csrf = panel.dataset.csrf;
  const input = document.getElementById("upload-file");
  const start = document.getElementById("upload-start");
  const cancel = document.getElementById("upload-cancel");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const piece = 16 << 20;
  let stopped = false;
  let current = null; // the XMLHttpRequest in flight

  const mib = (n) => (n / 1048576).toFixed(1) + " MiB";
  const keyOf = (file) => `imaged-upload:${image}:${file.name}:${file.size}:${file.lastModified}`;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const say = (text) => { status.textContent = text; };

  async function call(method, url, headers = {}) {
    const response = await fetch(url, { method, headers: { "X-CSRF-Token": csrf, ...headers }, credentials: "same-origin" });
    return response;
  }

  // One PATCH with upload progress events (fetch has none).
  function patch(url, offset, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      current = xhr;
      xhr.open("PATCH", url);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Upload-Offset", String(offset));
      xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error("network"));
      xhr.onabort = () => reject(new Error("aborted"));
      xhr.send(blob);
    });
  }

  async function run(file) {
    stopped = false;
    start.disabled = true;
    cancel.hidden = false;
    bar.max = file.size || 1;
    let location = localStorage.getItem(keyOf(file));
    let offset = 0;
    if (location) {
      const head = await call("HEAD", location);
      if (head.ok) { offset = Number(head.headers.get("Upload-Offset")); say(`Resuming at ${mib(offset)}.`); } else { location = null; }
    }
    if (!location) {
      const created = await call("POST", `/console/images/${image}/uploads`, { "Upload-Length": String(file.size) });
      if (created.status !== 201) { say(`Refused: ${await created.text()}`); start.disabled = false; return; }
      location = created.headers.get("Location");
      localStorage.setItem(keyOf(file), location);
    }
    const began = performance.now();
    const beganAt = offset;
    let failures = 0;
    while (!stopped) {
      if (offset >= file.size && file.size > 0) break;
      const end = Math.min(offset + piece, file.size);
      try {
        const xhr = await patch(location, offset, file.slice(offset, end), (sent) => {
          const done = offset + sent;
          bar.value = done;
          const seconds = (performance.now() - began) / 1000;
          const rate = seconds > 0 ? (done - beganAt) / seconds : 0;
          const left = rate > 0 ? Math.ceil((file.size - done) / rate) : 0;
          say(`${mib(done)} of ${mib(file.size)} · ${mib(rate)}/s · ${left} s left`);
        });
        if (xhr.status === 204) {
          offset = Number(xhr.getResponseHeader("Upload-Offset"));
          failures = 0;
          if (xhr.getResponseHeader("X-Image-Status") || offset >= file.size) break;
          continue;
        }
        if (xhr.status === 409 || xhr.status === 423) throw new Error("offset");
        say(`Refused (${xhr.status}): ${xhr.responseText}`);
        localStorage.removeItem(keyOf(file));
        start.disabled = false;
        cancel.hidden = true;
        return;
      } catch (error) {
        if (stopped) break;
        failures += 1;
        say(`Connection lost; retrying (${failures})…`);
        panel.dataset.retries = String(Number(panel.dataset.retries || 0) + 1);
        await sleep(Math.min(1000 * 2 ** Math.min(failures - 1, 3), 8000));
        try {
          const head = await call("HEAD", location);
          if (head.ok) offset = Number(head.headers.get("Upload-Offset"));
          else if (head.status === 404) { localStorage.removeItem(keyOf(file)); say("The upload ended on the server."); return; }
        } catch (_) { /* still offline: the next round tries again */ }
      }
    }
    if (stopped) return;
    localStorage.removeItem(keyOf(file));
    say("Upload complete: the server checked and stored it.");
    window.location.assign(`/console/images/${image}?done=uploaded`);
  }

  start.addEventListener("click", () => {
    const file = input.files && input.files[0];
    if (!file) { say("Choose a file first."); return; }
    run(file).catch((error) => { say(`Upload failed: ${error.message}`); start.disabled = false; });
  });
  cancel.addEventListener("click", async () => {
    stopped = true;
    if (current) current.abort();
    const file = input.files && input.files[0];
    const location = file && localStorage.getItem(keyOf(file));
    if (location) { await call("DELETE", location); localStorage.removeItem(keyOf(file)); }
    say("Upload cancelled.");
    start.disabled = false;
    cancel.hidden = true;
  });
}

// Running tasks (imports, copies): each row is refreshed from /console/tasks/<id> every second — bar,
// bytes, status, message. When one ends the page is loaded again, so the image's new state shows.
const units = ["B", "KiB", "MiB", "GiB", "TiB"];
const size = (n) => {
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return u === 0 ? `${n} B` : `${Math.round(v * 10) / 10} ${units[u]}`;
};
for (const row of document.querySelectorAll("tr[data-task]")) {
  const id = row.dataset.task;
  const bar = row.querySelector("progress.task-progress");
  const done = row.querySelector(".task-done");
  const state = row.querySelector(".task-status");
  const message = row.querySelector(".task-message");
  const timer = setInterval(async () => {
    let task;
    try {
      const response = await fetch(`/console/tasks/${encodeURIComponent(id)}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      task = await response.json();
    } catch (_) { return; } // offline for a moment: the next tick tries again
    if (bar && task.bytes_total) { bar.max = task.bytes_total; bar.value = Math.min(task.bytes_done, task.bytes_total); }
    if (done) done.textContent = size(task.bytes_done) + (task.bytes_total ? ` of ${size(task.bytes_total)}` : "");
    row.dataset.bytesDone = String(task.bytes_done);
    if (state) state.textContent = task.cancelled ? "cancelled" : task.status;
    if (message) message.textContent = task.message;
    if (task.status === "success" || task.status === "failure") {
      clearInterval(timer);
      setTimeout(() => window.location.assign(window.location.pathname + "#tasks"), 400);
    }
  }, 1000);
}

// The login form: Keystone's project and domain fields show only for a Keystone sign-in.
const source = document.getElementById("source");
if (source) {
  const fields = document.getElementById("keystone-fields");
  const sync = () => { fields.hidden = source.value !== "keystone"; };
  source.addEventListener("change", sync);
  sync();
}
