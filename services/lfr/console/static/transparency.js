// The public transparency page: finished deployments whose authorising officer published them. No sign-in
// and no personal data: the API serves place, times and counts only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  function td(text) {
    const c = document.createElement("td");
    c.textContent = text;
    return c;
  }

  const num = (x) => (x === null || x === undefined ? "not published" : Number(x).toLocaleString());
  const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  async function load() {
    try {
      const resp = await fetch("/api/v1/public/deployments", { cache: "no-store" });
      if (!resp.ok) throw new Error(`the server answered ${resp.status}`);
      const records = await resp.json();
      const rows = records.map((r) => {
        const tr = document.createElement("tr");
        tr.dataset.deploymentId = r.deployment_id;
        const from = r.ran_from || r.starts_at;
        const until = r.ran_until || r.ends_at;
        tr.append(
          td(r.place),
          td(new Date(r.starts_at).toLocaleDateString()),
          td(`${time(from)}–${time(until)}`),
          td(num(r.watchlist_size)),
          td(r.threshold === null || r.threshold === undefined ? "not recorded" : String(r.threshold)),
          td(
            r.expected_false_alerts_per_1000_people === null ||
              r.expected_false_alerts_per_1000_people === undefined
              ? "not recorded"
              : String(Number(r.expected_false_alerts_per_1000_people.toPrecision(2))),
          ),
          td(num(r.faces_analysed)),
          td(num(r.alerts)),
          td(num(r.confirmed)),
          td(num(r.false_alerts)),
          td(r.arrests === null ? "published by the force" : num(r.arrests)),
        );
        return tr;
      });
      $("records").tBodies[0].replaceChildren(...rows);
      $("records").hidden = rows.length === 0;
      $("records-status").textContent = rows.length
        ? `${rows.length} deployment(s).`
        : "No deployment records have been published yet.";
    } catch (err) {
      $("records-status").textContent = `Records unavailable: ${err.message}`;
    }
  }

  document.addEventListener("DOMContentLoaded", load);
})();
