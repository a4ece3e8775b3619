// Evidence redaction page: upload, follow the background job, preview the tracks, keep some, download.
// Everything comes from /api/v1/redactions with the officer's bearer token; nothing is stored in the browser.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ALLOWED = ["operator", "watchlist-admin"];
  let token = "";
  let lastFile = null;

  const api = async (path, options = {}) => {
    const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
    return fetch(path, Object.assign({}, options, { headers }));
  };

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("login-error").textContent = "";
    const r = await api("/api/v1/console/session");
    if (r.status === 401) {
      $("login-error").textContent = "The token was not accepted.";
      return;
    }
    const who = await r.json();
    if (!who.roles.some((role) => ALLOWED.includes(role))) {
      $("login-error").textContent = "This token does not hold a role that may redact (operator or watchlist-admin).";
      return;
    }
    $("who").textContent = `Signed in as ${who.name}`;
    $("login-panel").hidden = true;
    $("redact-panel").hidden = false;
  });

  const submit = async (keepTracks) => {
    const file = $("media").files[0] || lastFile;
    if (!file) {
      $("redact-error").textContent = "Choose a file first.";
      return;
    }
    lastFile = file;
    $("redact-error").textContent = "";
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("case_ref", $("case-ref").value);
    form.append("reason", $("reason").value);
    form.append("style", $("style").value);
    form.append("keep_tracks", keepTracks);
    form.append("preview", "1");
    const r = await api("/api/v1/redactions", { method: "POST", body: form });
    const body = await r.json();
    if (r.status !== 202) {
      $("redact-error").textContent = body.detail || `Refused (${r.status}).`;
      return;
    }
    $("result-panel").hidden = true;
    await follow(body.job_id);
  };

  const follow = async (jobId) => {
    for (;;) {
      const r = await api(`/api/v1/redactions/${jobId}`);
      const job = await r.json();
      $("progress").value = job.progress;
      $("job-status").textContent =
        job.status === "done" ? "Done" : job.status === "failed" ? `Failed: ${job.error}` : `Working: ${job.phase}`;
      if (job.status === "done") return show(job);
      if (job.status === "failed") return;
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
  };

  const blobUrl = async (path) => URL.createObjectURL(await (await api(path)).blob());

  const show = async (job) => {
    const kept = new Set(job.report.tracks.kept.map((k) => k.track_id));
    const list = $("tracks");
    list.replaceChildren();
    for (const t of job.tracks || []) {
      const li = document.createElement("li");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.id = `keep-${t.track}`;
      box.value = String(t.track);
      box.checked = kept.has(t.track);
      const label = document.createElement("label");
      label.htmlFor = box.id;
      label.textContent = `Keep track ${t.track} (frames ${t.first_frame}-${t.last_frame}, ${t.max_width_px} px)`;
      li.append(box, label);
      list.append(li);
    }
    if (job.has_preview) $("sheet").src = await blobUrl(`/api/v1/redactions/${job.job_id}/preview.png`);
    const link = $("download");
    link.href = await blobUrl(`/api/v1/redactions/${job.job_id}/output`);
    const ext = job.report.output.name.split(".").pop();
    link.download = `redacted-${job.case_ref}.${ext}`;
    link.hidden = false;
    const r = job.report;
    $("report-summary").textContent =
      `Tracks found ${r.tracks.found}, kept ${r.tracks.kept.map((k) => k.track_id).join(", ") || "none"}, ` +
      `covered ${r.tracks.redacted.length}\nInput sha256 ${r.input.sha256}\nOutput sha256 ${r.output.sha256}`;
    $("result-panel").hidden = false;
  };

  $("redact-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit($("keep-tracks").value);
  });

  $("again-button").addEventListener("click", () => {
    const ticked = [...document.querySelectorAll("#tracks input:checked")].map((b) => b.value);
    $("keep-tracks").value = ticked.join(",");
    submit(ticked.join(","));
  });
})();
