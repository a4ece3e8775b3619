// Field view for officers on a phone: today's alerts of one deployment, newest pending first, with the face
// the camera saw beside the watchlist photo and three large buttons to record what the officer found. Polls
// the alert API (a phone's connection comes and goes; a poll simply tries again), images fetched with the
// token and shown from blob: URLs released when another alert is shown.
"use strict";

(() => {
  const { $, api, json, sendJson, el, fmtTime, show } = window.LFR;
  const EVERY_MS = 3000;
  const STATUS = { pending: "Pending", confirmed: "Confirmed", rejected: "Not them", undecided: "Unsure" };
  const state = { deployment: "", alerts: [], current: null, urls: [], timer: null };

  function startOfToday() {
    const d = new Date();
    d.setHours(0, 0, 0, 0);
    return d.getTime();
  }

  async function loadDeployments() {
    const deps = await json("/api/v1/deployments");
    const live = deps
      .filter((d) => d.status === "running")
      .concat(deps.filter((d) => d.status !== "running"));
    $("f-deployment").replaceChildren(
      ...live.map((d) => el("option", { value: d.deployment_id }, `${d.location} · ${d.name} (${d.status})`)),
    );
  }

  function releaseImages() {
    for (const u of state.urls) URL.revokeObjectURL(u);
    state.urls = [];
  }

  async function image(imgId, path) {
    const img = $(imgId);
    try {
      const url = URL.createObjectURL(await (await api(path)).blob());
      state.urls.push(url);
      img.src = url;
    } catch (_) {
      img.removeAttribute("src");
      img.alt = "Image unavailable";
    }
  }

  async function showAlert(a) {
    const changed = !state.current || state.current.alert_id !== a.alert_id;
    state.current = a;
    show("current", true);
    $("current").dataset.alertId = a.alert_id;
    $("a-subject").textContent = a.subject_display_name
      ? `${a.subject_display_name} (${a.subject_id})`
      : a.subject_id;
    $("a-category").textContent = a.category || "–";
    $("a-camera").textContent = a.camera_ids.join(", ");
    $("a-seen").textContent = fmtTime(a.last_seen_ms);
    $("a-score").textContent = Number(a.best_score).toFixed(3);
    $("a-status").textContent = STATUS[a.status] || a.status;
    const decided = a.status !== "pending";
    for (const b of document.querySelectorAll("#current .decision button")) b.disabled = decided;
    if (!changed) return;
    $("decision-status").textContent = "";
    releaseImages();
    await Promise.all([
      image("probe", a.probe_url),
      image("reference", a.reference_url),
      json(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}`)
        .then((detail) => {
          if (state.current && state.current.alert_id === a.alert_id && detail.subject_display_name) {
            state.current.subject_display_name = detail.subject_display_name;
            $("a-subject").textContent = `${detail.subject_display_name} (${a.subject_id})`;
          }
        })
        .catch(() => {}),
    ]);
  }

  function renderToday() {
    const items = state.alerts.map((a) =>
      el(
        "li",
        { dataset: { alertId: a.alert_id, status: a.status } },
        el(
          "button",
          {
            type: "button",
            onclick: () => showAlert(a),
            "aria-current": state.current && state.current.alert_id === a.alert_id ? "true" : "false",
          },
          el("span", { className: "line1" }, `${a.category || "subject"} · ${a.subject_id}`),
          el(
            "span",
            { className: "line2" },
            `${a.camera_ids.join(", ")} · ${fmtTime(a.last_seen_ms)} · ${STATUS[a.status] || a.status}`,
          ),
        ),
      ),
    );
    $("today").replaceChildren(
      ...(items.length ? items : [el("li", { className: "muted" }, "No alerts today.")]),
    );
  }

  async function poll() {
    if (!state.deployment) return;
    try {
      const q = new URLSearchParams({ deployment: state.deployment, limit: "100" });
      const body = await json(`/api/v1/alerts?${q}`);
      const today = startOfToday();
      const alerts = body.alerts.filter((a) => a.last_seen_ms >= today);
      // Pending first (newest first), then the decided ones.
      const pending = alerts
        .filter((a) => a.status === "pending")
        .sort((a, b) => b.last_seen_ms - a.last_seen_ms);
      const decided = alerts
        .filter((a) => a.status !== "pending")
        .sort((a, b) => b.last_seen_ms - a.last_seen_ms);
      state.alerts = pending.concat(decided);
      $("field-status").textContent =
        `${pending.length} pending of ${state.alerts.length} today · ${new Date().toLocaleTimeString()}`;
      const keep = state.current && state.alerts.find((a) => a.alert_id === state.current.alert_id);
      if (keep)
        await showAlert(Object.assign(keep, { subject_display_name: state.current.subject_display_name }));
      else if (pending.length) await showAlert(pending[0]);
      renderToday();
    } catch (err) {
      $("field-status").textContent = `Connection problem (${err.message}); retrying.`;
    }
  }

  async function decide(outcome) {
    const a = state.current;
    if (!a) return;
    for (const b of document.querySelectorAll("#current .decision button")) b.disabled = true;
    $("decision-status").textContent = "Recording…";
    try {
      const out = await sendJson(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/adjudication`, "POST", {
        outcome,
        note: "field view",
      });
      Object.assign(a, out.alert);
      await showAlert(a);
      $("decision-status").textContent = `Recorded: ${STATUS[out.alert.status] || out.alert.status}.`;
      await poll();
    } catch (err) {
      $("decision-status").textContent = `Not recorded: ${err.message}`;
      if (a.status === "pending")
        for (const b of document.querySelectorAll("#current .decision button")) b.disabled = false;
    }
  }

  function bind() {
    $("dep-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.deployment = $("f-deployment").value;
      state.current = null;
      show("current", false);
      clearInterval(state.timer);
      poll();
      state.timer = setInterval(poll, EVERY_MS);
    });
    for (const b of document.querySelectorAll("#current .decision button")) {
      b.addEventListener("click", () => decide(b.dataset.outcome));
    }
  }

  window.LFR.page({
    role: "operator",
    init: async (_session, first) => {
      if (first) bind();
      await loadDeployments();
    },
  });
})();
