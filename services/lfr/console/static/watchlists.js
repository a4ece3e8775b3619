// Watchlist administrator's page: watchlists and their subjects, enrolment with a preview of what the
// system makes of each photo (the face found, its quality, the verdict) before anything is saved, bulk
// import from a CSV with progress and per-row errors, expiry and removal. Every change goes through the
// watchlist API, which audits it.
"use strict";

(() => {
  const { $, json, sendJson, el, fmtTime, b64Url, fileUrl, releaseUrls } = window.LFR;
  const state = { watchlist: "", previews: [] };
  const CSV_COLUMNS = [
    "subject_id",
    "display_name",
    "image_path",
    "category",
    "source",
    "image_date",
    "expires_at",
  ];

  const wlPath = (id) => `/api/v1/watchlists/${encodeURIComponent(id)}`;

  // ---- watchlists and subjects ------------------------------------------------------------------------

  async function loadWatchlists() {
    const lists = await json("/api/v1/watchlists");
    const items = lists.map((w) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            className: "linklike",
            "aria-current": w.watchlist_id === state.watchlist ? "true" : "false",
            onclick: () => openWatchlist(w.watchlist_id),
          },
          `${w.watchlist_id} (${w.subjects} subjects)`,
        ),
      ),
    );
    $("watchlists").replaceChildren(
      ...(items.length ? items : [el("li", { className: "muted" }, "No watchlists yet.")]),
    );
  }

  async function openWatchlist(id) {
    state.watchlist = id;
    $("subjects-title").textContent = `Subjects of ${id}`;
    $("enrol-title").textContent = `Enrol a subject on ${id}`;
    $("import-title").textContent = `Bulk import into ${id}`;
    await Promise.all([loadSubjects(), loadWatchlists()]);
  }

  function thumb(s) {
    if (!s.thumbnail) return el("span", { className: "muted" }, "–");
    return el("img", {
      src: b64Url(s.thumbnail),
      alt: `Enrolled face of ${s.subject_id}`,
      width: 48,
      height: 48,
    });
  }

  function changeCell(s) {
    const key = s.subject_id.replace(/[^A-Za-z0-9]/g, "_");
    const expiry = el("input", { id: `x-${key}`, placeholder: "2027-01-31 or 90d or 0", size: 12 });
    const reason = el("input", { id: `r-${key}`, placeholder: "reason", size: 12 });
    return el(
      "td",
      { className: "change" },
      el("label", { htmlFor: `x-${key}`, className: "sr-only" }, `New expiry for ${s.subject_id}`),
      expiry,
      el("label", { htmlFor: `r-${key}`, className: "sr-only" }, `Reason for changing ${s.subject_id}`),
      reason,
      el("button", { type: "button", onclick: () => setExpiry(s, expiry.value, reason.value) }, "Set expiry"),
      el("button", { type: "button", className: "danger", onclick: () => remove(s, reason.value) }, "Remove"),
    );
  }

  async function loadSubjects() {
    const body = await json(`${wlPath(state.watchlist)}/subjects?thumbnails=true`);
    if (!state.previews.length) releaseUrls(); // thumbnails of the previous table (previews keep theirs)
    const rows = body.subjects.map((s) =>
      el(
        "tr",
        { dataset: { subjectId: s.subject_id } },
        el("td", {}, thumb(s)),
        el(
          "td",
          {},
          el("strong", {}, s.display_name || s.subject_id),
          el("br"),
          el("small", {}, s.subject_id),
        ),
        el("td", {}, s.category),
        el("td", {}, s.images),
        el("td", { className: "expires" }, s.expires_at ? fmtTime(s.expires_at_iso) : "never"),
        changeCell(s),
      ),
    );
    $("subjects").tBodies[0].replaceChildren(...rows);
    $("subjects").hidden = rows.length === 0;
    $("subjects-empty").textContent = rows.length ? "" : "No subjects on this watchlist yet.";
  }

  async function setExpiry(s, value, reason) {
    try {
      await sendJson(`${wlPath(state.watchlist)}/subjects/${encodeURIComponent(s.subject_id)}`, "PATCH", {
        expires_at: value.trim() || "0",
        reason,
      });
      $("subject-status").textContent = `Expiry of ${s.subject_id} changed.`;
      await loadSubjects();
    } catch (err) {
      $("subject-status").textContent = `Not changed: ${err.message}`;
    }
  }

  async function remove(s, reason) {
    try {
      const q = new URLSearchParams({ reason });
      const out = await json(`${wlPath(state.watchlist)}/subjects/${encodeURIComponent(s.subject_id)}?${q}`, {
        method: "DELETE",
      });
      $("subject-status").textContent = `Removed ${s.subject_id} (${out.images_deleted} images deleted).`;
      await openWatchlist(state.watchlist);
    } catch (err) {
      $("subject-status").textContent = `Not removed: ${err.message}`;
    }
  }

  // ---- enrolment with preview -------------------------------------------------------------------------

  function faceBox(face, result) {
    const [x, y, w, h] = face.box;
    const box = el("span", { className: face.passed ? "facebox ok" : "facebox bad" });
    box.style.left = `${(100 * x) / result.width}%`;
    box.style.top = `${(100 * y) / result.height}%`;
    box.style.width = `${(100 * w) / result.width}%`;
    box.style.height = `${(100 * h) / result.height}%`;
    return box;
  }

  function previewCard(file, result) {
    const photo = el(
      "div",
      { className: "photo" },
      el("img", { src: fileUrl(file), alt: `Photo ${file.name}` }),
    );
    for (const f of result.faces || []) photo.append(faceBox(f, result));
    const first = (result.faces || [])[0];
    const facts = first
      ? el(
          "dl",
          { className: "facts" },
          el("dt", {}, "Faces found"),
          el("dd", {}, result.faces.length),
          el("dt", {}, "Face width"),
          el("dd", {}, `${Math.round(first.face_px)} px`),
          el("dt", {}, "Sharpness"),
          el("dd", {}, first.sharpness.toFixed(1)),
          el("dt", {}, "Turned (yaw ratio)"),
          el("dd", {}, first.yaw_ratio.toFixed(2)),
          el("dt", {}, "Detector score"),
          el("dd", {}, first.detector_score.toFixed(2)),
          el("dt", {}, "Quality score"),
          el("dd", {}, first.quality_score.toFixed(2)),
        )
      : el("p", { className: "muted" }, "No face found.");
    const chip =
      first && first.chip
        ? el("img", { className: "chip", src: b64Url(first.chip), alt: "The face as the system sees it" })
        : null;
    return el(
      "article",
      { className: `preview ${result.accepted ? "accepted" : "refused"}`, dataset: { file: file.name } },
      el("h3", {}, file.name),
      el("div", { className: "preview-body" }, photo, chip),
      el(
        "p",
        { className: "verdict" },
        result.accepted ? "Accepted: " : `Refused (${result.code}): `,
        result.verdict,
      ),
      facts,
    );
  }

  async function previewPhotos(files) {
    state.previews = [];
    $("previews").replaceChildren(el("p", { className: "muted" }, `Checking ${files.length} photo(s)…`));
    $("enrol-button").disabled = true;
    const cards = [];
    for (const file of files) {
      const form = new FormData();
      form.append("image", file);
      try {
        const result = await json(`${wlPath(state.watchlist)}/preview`, { method: "POST", body: form });
        state.previews.push({ file, result });
        cards.push(previewCard(file, result));
      } catch (err) {
        state.previews.push({ file, result: { accepted: false } });
        cards.push(
          el(
            "article",
            { className: "preview refused", dataset: { file: file.name } },
            el("h3", {}, file.name),
            el("p", { className: "verdict" }, `Refused: ${err.message}`),
          ),
        );
      }
    }
    $("previews").replaceChildren(...cards);
    const ok = state.previews.filter((p) => p.result.accepted).length;
    $("enrol-button").disabled = ok === 0;
    $("enrol-status").textContent = `${ok} of ${files.length} photo(s) can be enrolled.`;
  }

  function subjectForm(fields, file) {
    const form = new FormData();
    form.append("image", file);
    for (const [k, v] of Object.entries(fields)) if (v) form.append(k, v);
    return form;
  }

  async function enrol(ev) {
    ev.preventDefault();
    if (!state.watchlist) {
      $("enrol-status").textContent = "Choose or open a watchlist first.";
      return;
    }
    const fields = {
      subject_id: $("e-subject").value.trim(),
      display_name: $("e-name").value.trim(),
      category: $("e-category").value,
      source: $("e-source").value.trim(),
      image_date: $("e-date").value,
      expires_at: $("e-expires").value.trim(),
      reason: $("e-reason").value.trim(),
    };
    const accepted = state.previews.filter((p) => p.result.accepted);
    $("enrol-button").disabled = true;
    let done = 0;
    const problems = [];
    for (const { file } of accepted) {
      try {
        await json(`${wlPath(state.watchlist)}/subjects`, {
          method: "POST",
          body: subjectForm(fields, file),
        });
        done += 1;
      } catch (err) {
        problems.push(`${file.name}: ${err.message}`);
      }
    }
    $("enrol-status").textContent =
      `Enrolled ${done} photo(s) of ${fields.subject_id}.` +
      (problems.length ? ` Not enrolled: ${problems.join("; ")}` : "");
    if (done) {
      $("e-photos").value = "";
      $("previews").replaceChildren();
      state.previews = [];
      await openWatchlist(state.watchlist);
    }
  }

  // ---- bulk import ------------------------------------------------------------------------------------

  // RFC 4180 CSV: quoted cells may hold commas, quotes ("") and line breaks.
  function parseCsv(textIn) {
    const text = textIn.replace(/^\uFEFF/, "");
    const rows = [];
    let row = [];
    let cell = "";
    let quoted = false;
    for (let i = 0; i < text.length; i += 1) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') {
          cell += '"';
          i += 1;
        } else if (c === '"') quoted = false;
        else cell += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") {
        row.push(cell);
        cell = "";
      } else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i += 1;
        row.push(cell);
        rows.push(row);
        row = [];
        cell = "";
      } else cell += c;
    }
    if (cell !== "" || row.length) {
      row.push(cell);
      rows.push(row);
    }
    return rows.filter((r) => r.some((v) => v.trim() !== ""));
  }

  function importError(line, subject, reason) {
    $("import-errors").tBodies[0].append(
      el("tr", {}, el("td", {}, line), el("td", {}, subject || "–"), el("td", {}, reason)),
    );
    $("import-errors").hidden = false;
  }

  async function runImport(ev) {
    ev.preventDefault();
    if (!state.watchlist) {
      $("import-status").textContent = "Choose or open a watchlist first.";
      return;
    }
    $("import-errors").tBodies[0].replaceChildren();
    $("import-errors").hidden = true;
    const csvFile = $("i-csv").files[0];
    const photos = new Map([...$("i-photos").files].map((f) => [f.name, f]));
    const rows = parseCsv(await csvFile.text());
    const header = (rows.shift() || []).map((h) => h.trim());
    const missing = ["subject_id", "image_path"].filter((c) => !header.includes(c));
    const unknown = header.filter((c) => !CSV_COLUMNS.includes(c));
    if (missing.length || unknown.length) {
      $("import-status").textContent =
        `${csvFile.name} cannot be imported: ` +
        (missing.length ? `missing column(s) ${missing.join(", ")}. ` : "") +
        (unknown.length ? `unknown column(s) ${unknown.join(", ")}. ` : "") +
        `Expected ${CSV_COLUMNS.join(", ")}.`;
      return;
    }
    const reason = $("i-reason").value.trim();
    const progress = $("i-progress");
    progress.max = rows.length;
    progress.value = 0;
    progress.hidden = false;
    $("import-button").disabled = true;
    const rejected = {};
    let accepted = 0;
    const reject = (line, subject, code, why) => {
      rejected[code] = (rejected[code] || 0) + 1;
      importError(line, subject, why);
    };
    for (const [i, cells] of rows.entries()) {
      const line = `${csvFile.name}:${i + 2}`;
      $("import-status").textContent = `Importing row ${i + 1} of ${rows.length}…`;
      const row = Object.fromEntries(header.map((h, j) => [h, (cells[j] || "").trim()]));
      if (cells.length > header.length)
        reject(line, row.subject_id, "invalid", `row has more cells than the ${header.length} columns`);
      else if (!row.image_path) reject(line, row.subject_id, "invalid", "image_path is empty");
      else {
        const name = row.image_path.split(/[\\/]/).pop();
        const file = photos.get(name);
        if (!file) reject(line, row.subject_id, "unreadable", `photo ${name} was not among the files chosen`);
        else {
          const { image_path: _unused, ...fields } = row;
          try {
            await json(`${wlPath(state.watchlist)}/subjects`, {
              method: "POST",
              body: subjectForm({ ...fields, reason }, file),
            });
            accepted += 1;
          } catch (err) {
            reject(
              line,
              row.subject_id,
              err.code || (err.status === 422 ? "invalid" : `http_${err.status}`),
              err.message,
            );
          }
        }
      }
      progress.value = i + 1;
    }
    const refused = rows.length - accepted;
    $("import-status").textContent =
      `Imported ${accepted} of ${rows.length} row(s); ${refused} not imported.`;
    try {
      await sendJson(`${wlPath(state.watchlist)}/imports`, "POST", {
        total: rows.length,
        accepted,
        rejected_by_reason: rejected,
        reason,
      });
    } catch (err) {
      $("import-status").textContent += ` The import's summary was not recorded: ${err.message}`;
    }
    $("import-button").disabled = false;
    await openWatchlist(state.watchlist);
  }

  window.LFR.page({
    role: "watchlist-admin",
    init: async (_session, first) => {
      if (first) bind();
      await loadWatchlists();
    },
  });

  function bind() {
    $("open-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      openWatchlist($("open-id").value.trim());
    });
    $("e-photos").addEventListener("change", () => {
      if (!state.watchlist) {
        $("enrol-status").textContent = "Choose or open a watchlist first.";
        return;
      }
      previewPhotos([...$("e-photos").files]);
    });
    $("enrol-form").addEventListener("submit", enrol);
    $("import-form").addEventListener("submit", runImport);
  }
})();
