// Operations page: stack reachability, camera health and frame rates, consumer lag per group and partition,
// workers, throughput, key TTLs and the monitor's operations events, from GET /api/v1/ops/status (the same
// document as `lfr status --json`), refreshed every few seconds. Counts and ids only: nothing biometric.
"use strict";

(() => {
  const { $, json, el, fmtNum } = window.LFR;
  const EVERY_MS = 5000;
  let timer = null;

  const cell = (v) => el("td", {}, v === null || v === undefined ? "–" : v);
  const fps = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(1));

  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 120) return `${Math.round(s)} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} days`;
  }

  function rows(tableId, list, make) {
    $(tableId).tBodies[0].replaceChildren(...list.map(make));
  }

  function render(st) {
    const problems = [];
    const down = st.stack.filter((p) => !p.reachable).map((p) => p.name);
    if (down.length) problems.push(`unreachable: ${down.join(", ")}`);
    const silent = st.cameras.filter((c) => c.health !== "ok").map((c) => `${c.camera_id} (${c.health})`);
    if (silent.length) problems.push(`cameras: ${silent.join(", ")}`);
    const jumps = st.deployments.filter((d) => d.alert_rate_jump).map((d) => d.deployment_id);
    if (jumps.length) problems.push(`alert rate jumped: ${jumps.join(", ")}`);
    const banner = $("ops-status");
    banner.dataset.healthy = String(st.healthy);
    banner.textContent =
      (st.healthy ? "All healthy" : `Attention: ${problems.join("; ") || "see below"}`) +
      ` · updated ${new Date(st.generated_at).toLocaleTimeString()}`;

    $("stack").replaceChildren(
      ...st.stack.map((p) =>
        el(
          "li",
          { dataset: { ok: String(p.reachable) } },
          `${p.reachable ? "✔" : "✘"} ${p.name}`,
          p.detail ? ` · ${p.detail}` : "",
        ),
      ),
    );
    const m = st.monitor;
    $("monitor").textContent = m.running
      ? `Monitor running${m.host ? ` on ${m.host}` : ""}; last heartbeat ${m.updated_at ? new Date(m.updated_at).toLocaleTimeString() : "–"}.`
      : "Monitor not running: camera and alert-rate figures may be stale.";

    rows("cameras", st.cameras, (c) =>
      el(
        "tr",
        { dataset: { health: c.health, cameraId: c.camera_id } },
        cell(c.camera_id),
        cell(c.deployment_id || "–"),
        el(
          "td",
          { className: `health ${c.health.replace(" ", "-")}` },
          c.health + (c.state ? ` (${c.state})` : ""),
        ),
        cell(fps(c.input_fps)),
        cell(fps(c.analysed_fps)),
        cell(c.last_frame_age_s === null ? "–" : `${duration(c.last_frame_age_s)} ago`),
        cell(c.reconnects),
      ),
    );

    const parts = [];
    for (const g of st.groups) for (const p of g.partitions) parts.push({ g, p });
    rows("lag", parts, ({ g, p }) =>
      el(
        "tr",
        { className: p.lag > 0 ? "lagging" : "" },
        cell(g.group),
        cell(p.topic),
        cell(p.partition),
        cell(fmtNum(p.lag)),
        cell(p.committed === null ? "never" : fmtNum(p.committed)),
        cell(fmtNum(p.end)),
      ),
    );
    rows("workers", st.groups, (g) =>
      el("tr", {}, cell(g.group), cell(g.role), cell(g.state), cell(g.members.length), cell(fmtNum(g.lag))),
    );
    rows("throughput", st.throughput, (t) =>
      el(
        "tr",
        {},
        cell(t.topic),
        cell(t.records_per_s === null ? "–" : t.records_per_s.toFixed(1)),
        cell(fmtNum(t.end_offset_total)),
      ),
    );
    const k = st.keys;
    $("crop-keys").textContent =
      `${fmtNum(k.crop_keys)} crop key(s) alive` +
      (k.crop_key_ttl_s.length
        ? `; shortest TTL ${duration(k.crop_key_ttl_s[0])}, longest ${duration(k.crop_key_ttl_s[k.crop_key_ttl_s.length - 1])}`
        : "");
    rows("keys", k.alert_keys, (a) =>
      el("tr", {}, cell(a.deployment_id), cell(a.ttl_s === null ? "no expiry" : duration(a.ttl_s))),
    );
    rows("deployments", st.deployments, (d) =>
      el(
        "tr",
        { className: d.alert_rate_jump ? "lagging" : "" },
        cell(d.deployment_id),
        cell(d.status || "–"),
        cell(d.alerts_last_minute),
        cell(d.alerts_baseline_per_min.toFixed(1)),
      ),
    );
    $("events").replaceChildren(
      ...(st.events.length
        ? st.events.map((e) =>
            el(
              "li",
              {},
              `${new Date(e.at).toLocaleTimeString()} · ${e.kind.replace(/_/g, " ")} · ${e.subject}`,
            ),
          )
        : [el("li", { className: "muted" }, "No operations events.")]),
    );
  }

  async function refresh() {
    try {
      render(await json("/api/v1/ops/status"));
    } catch (err) {
      $("ops-status").dataset.healthy = "false";
      $("ops-status").textContent = `Status unavailable: ${err.message}`;
    }
  }

  window.LFR.page({
    role: "operations",
    init: async () => {
      clearInterval(timer);
      await refresh();
      timer = setInterval(refresh, EVERY_MS);
    },
  });
})();
