// LFR operator console: live alerts over server-sent events, side-by-side faces, officers' decisions.
// Sign-in, the token and calls to the API are common.js's (window.LFR), shared with the other pages.
//
// Why fetch() instead of EventSource for the live stream: EventSource cannot send an Authorization header,
// so the token would have to travel in the URL (browser history, proxies' logs). The stream is read with
// fetch and parsed here, and reconnects with backoff; every (re)connect starts with a snapshot, so an
// alert raised while the connection was down still appears. Images are fetched with the token too and
// shown from blob: URLs that are revoked as soon as another alert is selected.
"use strict";

(() => {
  const DEPLOYMENT_KEY = "lfr.console.deployment";
  const DASHBOARD_EVERY_MS = 10000;
  const DASHBOARD_MIN_GAP_MS = 1000;
  const LIST_LIMIT = 300;
  const OUTCOME_TEXT = { match: "Confirmed match", no_match: "Rejected (no match)", unable: "Unable to decide" };
  const STATUS_TEXT = {
    pending: "Pending decision",
    confirmed: "Confirmed match",
    rejected: "Rejected (no match)",
    undecided: "Unable to decide",
  };

  const { $, api, show, HttpError } = window.LFR;
  const state = {
    deployment: sessionStorage.getItem(DEPLOYMENT_KEY) || "",
    alerts: new Map(),
    selected: null,
    stream: null,
    streamGeneration: 0,
    imageUrls: [],
    dashboardTimer: null,
    dashboardAt: 0,
    dashboardPending: null,
    renderQueued: false,
    seenOnce: new Set(),
  };

  function setConn(text) {
    $("conn-status").textContent = text;
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    return `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`;
  }

  function fmtScore(x) {
    return Number(x).toFixed(3);
  }

  // ---- sign in / out ------------------------------------------------------------------------------------

  // What signing out clears besides the token (common.js shows the sign-in form again).
  function signedOut() {
    stopStream();
    clearImages();
    sessionStorage.removeItem(DEPLOYMENT_KEY);
    state.deployment = "";
    state.alerts.clear();
    state.selected = null;
    clearInterval(state.dashboardTimer);
    show("deployment-panel", false);
    show("change-deployment", false);
    show("current-deployment", false);
    setConn("Signed out");
  }

  async function loadDeploymentOptions() {
    // The deployments route belongs to the watchlist service; the console works without it.
    try {
      const resp = await api("/api/v1/deployments");
      const body = await resp.json();
      const items = Array.isArray(body) ? body : body.deployments || body.items || [];
      const list = $("deployment-options");
      list.replaceChildren();
      for (const d of items) {
        const id = typeof d === "string" ? d : d.deployment_id || d.id;
        if (!id) continue;
        const opt = document.createElement("option");
        opt.value = id;
        if (d.status) opt.label = `${id} (${d.status})`;
        list.appendChild(opt);
      }
    } catch (_) {
      /* optional */
    }
  }

  function chooseDeployment() {
    stopStream();
    clearInterval(state.dashboardTimer);
    show("workspace", false);
    show("login-panel", false);
    show("deployment-panel", true);
    show("signout", true);
    show("change-deployment", false);
    show("current-deployment", false);
    setConn("Signed in");
    $("deployment").value = state.deployment || "";
    loadDeploymentOptions();
    $("deployment").focus();
  }

  function openDeployment(id) {
    state.deployment = id;
    sessionStorage.setItem(DEPLOYMENT_KEY, id);
    state.alerts.clear();
    state.seenOnce.clear();
    state.selected = null;
    renderList();
    renderSelected();
    show("deployment-panel", false);
    show("workspace", true);
    show("change-deployment", true);
    $("current-deployment").textContent = `Deployment: ${id}`;
    show("current-deployment", true);
    startStream();
    refreshDashboard();
    clearInterval(state.dashboardTimer);
    state.dashboardTimer = setInterval(refreshDashboard, DASHBOARD_EVERY_MS);
  }

  // ---- live stream --------------------------------------------------------------------------------------

  function stopStream() {
    state.streamGeneration += 1;
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  function startStream() {
    stopStream();
    const generation = state.streamGeneration;
    let delay = 1000;
    const connect = async () => {
      if (generation !== state.streamGeneration) return;
      const controller = new AbortController();
      state.stream = controller;
      setConn("Connecting…");
      try {
        const resp = await api(`/api/v1/deployments/${encodeURIComponent(state.deployment)}/alerts/stream`, {
          signal: controller.signal,
          headers: { Accept: "text/event-stream" },
        });
        setConn("Live");
        delay = 1000;
        await readEvents(resp.body, generation);
      } catch (err) {
        if (err.name === "AbortError" || (err instanceof HttpError && err.status === 401)) return;
      }
      if (generation !== state.streamGeneration) return;
      setConn(`Connection lost; reconnecting in ${Math.round(delay / 1000)} s`);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
    connect();
  }

  async function readEvents(body, generation) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== state.streamGeneration) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
        if (data.length) handleEvent(event, data.join("\n"));
      }
    }
  }

  function handleEvent(event, data) {
    let doc;
    try {
      doc = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (event === "snapshot") {
      for (const a of doc.alerts || []) upsert(a, false);
      scheduleRender();
    } else if (event === "alert") {
      upsert(doc.alert, true);
      scheduleRender();
      refreshDashboardSoon();
      if (state.selected === doc.alert.alert_id) renderFacts(state.alerts.get(state.selected));
    }
  }

  // Bursts of events (a crowd passing a camera) are drawn once per frame, not once per event.
  function scheduleRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => {
      state.renderQueued = false;
      renderList();
    });
  }

  function refreshDashboardSoon() {
    const wait = state.dashboardAt + DASHBOARD_MIN_GAP_MS - Date.now();
    if (wait <= 0) refreshDashboard();
    else if (!state.dashboardPending) {
      state.dashboardPending = setTimeout(() => {
        state.dashboardPending = null;
        refreshDashboard();
      }, wait);
    }
  }

  function upsert(alert, live) {
    const have = state.alerts.get(alert.alert_id);
    if (have && have.revision > alert.revision) return;
    const merged = Object.assign({}, have || {}, alert);
    if (have && have.subject_display_name && !merged.subject_display_name) {
      merged.subject_display_name = have.subject_display_name;
    }
    merged._new = live && !have;
    state.alerts.set(alert.alert_id, merged);
  }

  // ---- rendering ----------------------------------------------------------------------------------------

  function renderList() {
    const list = $("alert-list");
    const alerts = [...state.alerts.values()].sort((a, b) => b.last_seen_ms - a.last_seen_ms);
    const pending = alerts.filter((a) => a.status === "pending").length;
    $("alert-count").textContent = alerts.length ? `(${alerts.length}, ${pending} pending)` : "";
    show("no-alerts", alerts.length === 0);
    const items = [];
    for (const a of alerts.slice(0, LIST_LIMIT)) {
      const li = document.createElement("li");
      li.dataset.alertId = a.alert_id;
      li.dataset.status = a.status;
      if (a._new && !state.seenOnce.has(a.alert_id)) li.className = "new";
      state.seenOnce.add(a.alert_id);
      const btn = document.createElement("button");
      btn.type = "button";
      if (state.selected === a.alert_id) btn.setAttribute("aria-current", "true");
      const l1 = document.createElement("span");
      l1.className = "line1";
      l1.textContent = `${a.category || "subject"} · ${a.subject_id} · score ${fmtScore(a.best_score)}`;
      const l2 = document.createElement("span");
      l2.className = "line2";
      l2.textContent =
        `${a.camera_ids.join(", ")} · ${fmtTime(a.last_seen_ms)} · ${STATUS_TEXT[a.status] || a.status}` +
        (a.hit_count > 1 ? ` · ${a.hit_count} sightings` : "");
      btn.append(l1, l2);
      btn.addEventListener("click", () => select(a.alert_id));
      li.appendChild(btn);
      items.push(li);
    }
    if (alerts.length > LIST_LIMIT) {
      const more = document.createElement("li");
      more.className = "muted";
      more.textContent = `Showing the ${LIST_LIMIT} most recent of ${alerts.length} alerts.`;
      items.push(more);
    }
    list.replaceChildren(...items);
  }

  function clearImages() {
    for (const url of state.imageUrls) URL.revokeObjectURL(url);
    state.imageUrls = [];
    for (const id of ["probe-img", "reference-img"]) {
      const img = $(id);
      img.removeAttribute("src");
    }
  }

  async function loadImage(imgId, path, missingText) {
    const img = $(imgId);
    try {
      const resp = await api(path);
      const url = URL.createObjectURL(await resp.blob());
      state.imageUrls.push(url);
      img.src = url;
      img.alt = imgId === "probe-img" ? "Face captured by the camera (probe)" : "Watchlist reference image";
    } catch (err) {
      img.removeAttribute("src");
      img.alt = missingText;
    }
  }

  function renderFacts(a) {
    if (!a) return;
    $("f-subject").textContent = a.subject_display_name
      ? `${a.subject_display_name} (${a.subject_id})`
      : a.subject_id;
    $("f-category").textContent = a.category || "–";
    $("f-score").textContent = fmtScore(a.best_score);
    $("f-threshold").textContent = fmtScore(a.threshold);
    $("f-cameras").textContent = a.camera_ids.join(", ");
    $("f-first").textContent = fmtTime(a.first_seen_ms);
    $("f-last").textContent = fmtTime(a.last_seen_ms);
    $("f-hits").textContent = String(a.hit_count);
    $("f-status").textContent = STATUS_TEXT[a.status] || a.status;
    const decided = a.status !== "pending";
    for (const b of document.querySelectorAll("#decision-form button")) b.disabled = decided;
    $("note").disabled = decided;
    if (decided && a.adjudication) {
      $("decision-status").textContent =
        `Decided: ${OUTCOME_TEXT[a.adjudication.outcome]} by ${a.adjudication.officer} at ` +
        fmtTime(a.adjudication.decided_at_ms);
    }
  }

  function renderSelected() {
    const a = state.selected ? state.alerts.get(state.selected) : null;
    show("view-empty", !a);
    show("view-body", !!a);
    if (a) renderFacts(a);
  }

  async function select(alertId) {
    state.selected = alertId;
    clearImages();
    $("decision-status").textContent = "";
    $("note").value = "";
    renderList();
    renderSelected();
    $("alert-view").focus();
    const a = state.alerts.get(alertId);
    await Promise.all([
      loadImage("probe-img", a.probe_url, "Probe image unavailable"),
      loadImage("reference-img", a.reference_url, "Reference image unavailable"),
      api(`/api/v1/alerts/${encodeURIComponent(alertId)}`)
        .then((r) => r.json())
        .then((detail) => {
          upsert(detail, false);
          if (state.selected === alertId) renderFacts(state.alerts.get(alertId));
        })
        .catch(() => {}),
    ]);
  }

  async function decide(outcome) {
    const alertId = state.selected;
    if (!alertId) return;
    const buttons = document.querySelectorAll("#decision-form button");
    for (const b of buttons) b.disabled = true;
    $("decision-status").textContent = "Recording decision…";
    try {
      const resp = await api(`/api/v1/alerts/${encodeURIComponent(alertId)}/adjudication`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ outcome, note: $("note").value }),
      });
      const body = await resp.json();
      upsert(body.alert, false);
      renderList();
      renderFacts(state.alerts.get(alertId));
      $("decision-status").textContent = `Recorded: ${OUTCOME_TEXT[outcome]}.`;
      refreshDashboard();
    } catch (err) {
      $("decision-status").textContent =
        err.status === 409 ? `Not recorded: ${err.message}.` : `Not recorded (${err.message}). Try again.`;
      const a = state.alerts.get(alertId);
      if (a && a.status === "pending") for (const b of buttons) b.disabled = false;
    }
  }

  async function refreshDashboard() {
    if (!state.deployment) return;
    state.dashboardAt = Date.now();
    try {
      const resp = await api(`/api/v1/deployments/${encodeURIComponent(state.deployment)}/dashboard`);
      const d = await resp.json();
      $("d-faces").textContent = d.faces_analysed.toLocaleString();
      $("d-alerts").textContent = d.alerts.toLocaleString();
      $("d-confirmed").textContent = d.confirmed.toLocaleString();
      $("d-rejected").textContent = d.rejected.toLocaleString();
      $("d-unable").textContent = d.unable.toLocaleString();
      $("d-pending").textContent = d.pending.toLocaleString();
      $("d-rate").textContent = d.alerts_per_1000_faces === null ? "–" : d.alerts_per_1000_faces.toFixed(2);
    } catch (_) {
      /* shown again on the next refresh */
    }
  }

  // ---- wiring -------------------------------------------------------------------------------------------

  function bind() {
    $("deployment-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const id = $("deployment").value.trim();
      if (id) openDeployment(id);
    });
    $("change-deployment").addEventListener("click", chooseDeployment);
    for (const b of document.querySelectorAll("#decision-form button")) {
      b.addEventListener("click", () => decide(b.dataset.outcome));
    }
  }

  // A tab that was already signed in goes back to its deployment; a new sign-in chooses one.
  window.LFR.page({
    role: "operator",
    init: (_session, first, restored) => {
      if (first) bind();
      if (restored && state.deployment) openDeployment(state.deployment);
      else chooseDeployment();
    },
    signedOut,
  });
})();
