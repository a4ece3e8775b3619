// Evidence redaction page: upload, follow the background job, preview the tracks, keep some, download.
// Everything comes from /api/v1/redactions with the officer's bearer token (signed in through common.js, held
// in this tab's sessionStorage only); no footage, result or report is stored in the browser.
"use strict";

(() => {
  const { $, api, json } = window.LFR;
  let lastFile = null;

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
    let body;
    try {
      body = await json("/api/v1/redactions", { method: "POST", body: form });
    } catch (err) {
      $("redact-error").textContent = err.message || `Refused (${err.status}).`;
      return;
    }
    $("result-panel").hidden = true;
    await follow(body.job_id);
  };

  const follow = async (jobId) => {
    for (;;) {
      const job = await json(`/api/v1/redactions/${jobId}`);
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

  const bind = () => {
    $("redact-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      submit($("keep-tracks").value);
    });

    $("again-button").addEventListener("click", () => {
      const ticked = [...document.querySelectorAll("#tracks input:checked")].map((b) => b.value);
      $("keep-tracks").value = ticked.join(",");
      submit(ticked.join(","));
    });
  };

  window.LFR.page({
    role: ["operator", "watchlist-admin"],
    refused: "That token does not hold a role that may redact (operator or watchlist-admin).",
    init: (_session, first) => {
      if (first) bind();
    },
  });
})();
