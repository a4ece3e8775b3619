// Auditor's page: whether the audit hash chain verifies, audit search by actor, action, deployment and time
// with CSV/JSON export, and each deployment's transparency report with plots over time (faces analysed,
// alerts, outcomes, false-alert rate) drawn here as inline SVG. Exports are audited by the API.
"use strict";

(() => {
  const { $, json, el, fmtTime, fmtNum, show, download } = window.LFR;
  const SVG = "http://www.w3.org/2000/svg";
  const W = 480;
  const H = 180;
  const PAD = { l: 44, r: 8, t: 10, b: 26 };

  // ---- chain ------------------------------------------------------------------------------------------

  // The API checks the records appended since its last check; `full` re-hashes every record (after anyone
  // had access to the broker's disks, say).
  async function verify(full = false) {
    const p = $("chain-status");
    p.textContent = full ? "Re-hashing every record…" : "Verifying…";
    delete p.dataset.ok;
    try {
      const r = await json(full ? "/api/v1/audit/verify?full=true" : "/api/v1/audit/verify");
      p.dataset.ok = String(r.ok);
      const how = full ? "every record re-hashed" : "new records checked";
      p.textContent = r.ok
        ? `Verified: ${fmtNum(r.records)} records, chain intact (${r.scope}; ${how}).`
        : `BROKEN at record ${r.first_bad_seq}: ${r.problem} (${fmtNum(r.records)} records read; ${r.scope}).`;
    } catch (err) {
      p.dataset.ok = "false";
      p.textContent = `Could not verify: ${err.message}`;
    }
  }

  // ---- search -----------------------------------------------------------------------------------------

  function filters() {
    const q = new URLSearchParams();
    const put = (k, v) => v && q.set(k, v);
    put("actor", $("s-actor").value.trim());
    put("action", $("s-action").value.trim());
    put("deployment", $("s-deployment").value.trim());
    // datetime-local is the browser's local time: sent with its UTC offset so the API compares correctly.
    const iso = (v) => (v ? new Date(v).toISOString() : "");
    put("since", iso($("s-since").value));
    put("until", iso($("s-until").value));
    return q;
  }

  async function search(ev) {
    if (ev) ev.preventDefault();
    $("search-status").textContent = "Searching…";
    try {
      const found = await json(`/api/v1/audit/search?${filters()}`);
      const rows = found.map((e) =>
        el(
          "tr",
          { dataset: { action: e.action } },
          el("td", {}, e.seq),
          el("td", {}, fmtTime(e.time)),
          el("td", {}, e.actor),
          el("td", {}, e.action),
          el("td", {}, e.target),
          el("td", {}, e.reason || "–"),
        ),
      );
      $("results").tBodies[0].replaceChildren(...rows);
      $("results").hidden = rows.length === 0;
      $("search-status").textContent = `${rows.length} record(s), newest first.`;
    } catch (err) {
      $("search-status").textContent = `Search failed: ${err.message}`;
    }
  }

  async function exportAudit(format) {
    const q = filters();
    q.set("format", format);
    try {
      const name = await download(`/api/v1/audit/export?${q}`, `lfr-audit.${format}`);
      $("search-status").textContent = `Exported ${name} (the export is recorded in the audit log).`;
    } catch (err) {
      $("search-status").textContent = `Export failed: ${err.message}`;
    }
  }

  // ---- report and plots -------------------------------------------------------------------------------

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children) node.append(c);
    return node;
  }

  function niceMax(x) {
    if (x <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(x));
    for (const m of [1, 2, 5, 10]) if (x <= m * p) return m * p;
    return 10 * p;
  }

  function frame(labels, top, title) {
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "plot" });
    root.append(svg("title", {}, title));
    const ih = H - PAD.t - PAD.b;
    for (const f of [0, 0.5, 1]) {
      const y = PAD.t + ih * (1 - f);
      root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
      const v = top * f;
      root.append(
        svg(
          "text",
          { x: PAD.l - 4, y: y + 4, "text-anchor": "end", class: "tick" },
          Number.isInteger(v) ? String(v) : v.toPrecision(2),
        ),
      );
    }
    const n = labels.length;
    const iw = W - PAD.l - PAD.r;
    for (const i of new Set([0, Math.floor((n - 1) / 2), n - 1])) {
      if (i < 0) continue;
      const x = PAD.l + (iw * (i + 0.5)) / n;
      const t = new Date(labels[i]);
      root.append(
        svg(
          "text",
          { x, y: H - 8, "text-anchor": "middle", class: "tick" },
          t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
        ),
      );
    }
    return root;
  }

  // Bars per time bin; several series are stacked (outcomes).
  function bars(container, labels, series, title) {
    const totals = labels.map((_, i) => series.reduce((s, sr) => s + sr.values[i], 0));
    const top = niceMax(Math.max(0, ...totals));
    const root = frame(labels, top, title);
    const n = labels.length;
    const iw = W - PAD.l - PAD.r;
    const ih = H - PAD.t - PAD.b;
    const bw = Math.max(1, (iw / n) * 0.8);
    labels.forEach((_, i) => {
      let base = 0;
      for (const sr of series) {
        const v = sr.values[i];
        if (v > 0) {
          const h = (ih * v) / top;
          const y = PAD.t + ih - (ih * base) / top - h;
          root.append(
            svg(
              "rect",
              { x: PAD.l + (iw * i) / n + (iw / n - bw) / 2, y, width: bw, height: h, class: sr.cls },
              svg("title", {}, `${sr.name}: ${v}`),
            ),
          );
        }
        base += v;
      }
    });
    container.replaceChildren(root);
  }

  function line(container, labels, values, title) {
    const known = values.filter((v) => v !== null);
    const top = niceMax(Math.max(0, ...known));
    const root = frame(labels, top, title);
    const n = labels.length;
    const iw = W - PAD.l - PAD.r;
    const ih = H - PAD.t - PAD.b;
    const pts = [];
    values.forEach((v, i) => {
      if (v === null) return;
      pts.push(`${(PAD.l + (iw * (i + 0.5)) / n).toFixed(1)},${(PAD.t + ih - (ih * v) / top).toFixed(1)}`);
    });
    if (pts.length) root.append(svg("polyline", { points: pts.join(" "), class: "series-line" }));
    if (!pts.length)
      root.append(
        svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "tick" }, "no faces analysed yet"),
      );
    container.replaceChildren(root);
  }

  async function loadDeployments() {
    const deps = await json("/api/v1/deployments");
    $("r-deployment").replaceChildren(
      ...deps.map((d) => el("option", { value: d.deployment_id }, `${d.name} · ${d.location} (${d.status})`)),
    );
  }

  async function showReport(ev) {
    if (ev) ev.preventDefault();
    const id = $("r-deployment").value;
    if (!id) return;
    $("report-status").textContent = "Loading…";
    try {
      const out = await json(`/api/v1/deployments/${encodeURIComponent(id)}/report`);
      const r = out.report;
      $("t-faces").textContent = fmtNum(r.faces_analysed);
      $("t-alerts").textContent = fmtNum(r.alerts);
      $("t-confirmed").textContent = fmtNum(r.confirmed);
      $("t-rejected").textContent = fmtNum(r.rejected);
      $("t-unable").textContent = fmtNum(r.unable);
      $("t-pending").textContent = fmtNum(r.pending);
      $("t-far").textContent = r.faces_analysed
        ? ((1000 * r.rejected) / r.faces_analysed).toPrecision(3)
        : "–";
      const e = r.expected;
      $("t-expected").textContent = e
        ? `threshold ${e.threshold}, ${fmtNum(e.watchlist_size)} watchlist images: ` +
          (e.false_alerts_per_1000 === null
            ? "false alerts expected: unknown"
            : `${Number(e.false_alerts_per_1000.toPrecision(3))} false alerts expected per 1,000 people passing`) +
          (e.tpir === null ? "" : `, ${(100 * e.tpir).toFixed(1)}% of watchlist people found from one face`)
        : "not recorded (not authorised, or authorised before the record kept it)";
      const tl = out.timeline;
      const labels = tl.map((b) => b.start);
      bars(
        $("c-faces"),
        labels,
        [{ name: "faces", values: tl.map((b) => b.faces_analysed), cls: "s-faces" }],
        "Faces analysed per interval",
      );
      bars(
        $("c-alerts"),
        labels,
        [{ name: "alerts", values: tl.map((b) => b.alerts), cls: "s-alerts" }],
        "Alerts per interval",
      );
      bars(
        $("c-outcomes"),
        labels,
        [
          { name: "confirmed", values: tl.map((b) => b.confirmed), cls: "s-confirmed" },
          { name: "rejected", values: tl.map((b) => b.rejected), cls: "s-rejected" },
          { name: "unable", values: tl.map((b) => b.unable), cls: "s-unable" },
        ],
        "Decisions per interval",
      );
      let faces = 0;
      let rejected = 0;
      const far = tl.map((b) => {
        faces += b.faces_analysed;
        rejected += b.rejected;
        return faces ? (1000 * rejected) / faces : null;
      });
      line($("c-far"), labels, far, "False alerts per 1,000 faces, running total");
      show("report-body", true);
      $("report-status").textContent =
        `${out.report.deployment_id}: ${fmtTime(out.window_start)} to ${fmtTime(out.window_end)}.`;
    } catch (err) {
      $("report-status").textContent = `Report unavailable: ${err.message}`;
    }
  }

  async function exportReport(format) {
    const id = $("r-deployment").value;
    if (!id) return;
    try {
      const name = await download(
        `/api/v1/deployments/${encodeURIComponent(id)}/report/export?format=${format}`,
        `lfr-report.${format}`,
      );
      $("report-status").textContent = `Exported ${name} (recorded in the audit log).`;
    } catch (err) {
      $("report-status").textContent = `Export failed: ${err.message}`;
    }
  }

  function bind() {
    $("verify-button").addEventListener("click", () => verify(false));
    $("rehash-button").addEventListener("click", () => verify(true));
    $("search-form").addEventListener("submit", search);
    $("export-csv").addEventListener("click", () => exportAudit("csv"));
    $("export-json").addEventListener("click", () => exportAudit("json"));
    $("report-form").addEventListener("submit", showReport);
    $("report-csv").addEventListener("click", () => exportReport("csv"));
    $("report-json").addEventListener("click", () => exportReport("json"));
  }

  window.LFR.page({
    role: "auditor",
    init: async (_session, first) => {
      if (first) bind();
      await Promise.all([verify(), loadDeployments(), search()]);
    },
  });
})();
