// Authorising officer's page: review what a deployment will do (purpose, place, times, cameras, watchlists
// and their size, the threshold with the false-alert rate and TPIR to expect at that size), then authorise
// it or refuse it with a reason; later, switch its public transparency record on or off. Decisions are made
// as the signed-in officer; the API refuses anyone else and audits every decision.
"use strict";

(() => {
  const { $, json, sendJson, el, fmtTime, fmtNum, show } = window.LFR;
  const state = { me: "", deployments: [], selected: null };
  const SOURCE = {
    card: "the model's calibrated default",
    explicit: "set by a person",
    size_rule: "the watchlist-size rule",
  };

  const depPath = (id) => `/api/v1/deployments/${encodeURIComponent(id)}`;
  const same = (a, b) => (a || "").trim().toLowerCase() === (b || "").trim().toLowerCase();

  function item(d) {
    return el(
      "li",
      { dataset: { deploymentId: d.deployment_id, status: d.status } },
      el(
        "button",
        {
          type: "button",
          className: "linklike",
          "aria-current":
            state.selected && state.selected.deployment_id === d.deployment_id ? "true" : "false",
          onclick: () => select(d.deployment_id),
        },
        `${d.name} · ${d.location} · ${d.status}`,
      ),
    );
  }

  async function loadList() {
    state.deployments = await json("/api/v1/deployments");
    const mine = state.deployments.filter(
      (d) => d.status === "draft" && same(d.authorising_officer, state.me),
    );
    $("mine").replaceChildren(
      ...(mine.length ? mine.map(item) : [el("li", { className: "muted" }, "Nothing awaits your decision.")]),
    );
    $("others").replaceChildren(...state.deployments.filter((d) => !mine.includes(d)).map(item));
  }

  function thresholdText(d) {
    return `${d.effective_threshold} (${d.metric === "L2" ? "distance: lower is stricter" : "similarity: higher is stricter"})`;
  }

  function render(d, cameras) {
    state.selected = d;
    show("review-empty", false);
    show("review-body", true);
    $("review-title").textContent = `Review: ${d.name}`;
    $("r-status").textContent = d.status + (d.refusal_reason ? ` (reason: ${d.refusal_reason})` : "");
    $("r-name").textContent = d.name;
    $("r-purpose").textContent = d.purpose;
    $("r-place").textContent = d.location;
    $("r-from").textContent = fmtTime(d.starts_at);
    $("r-until").textContent = fmtTime(d.ends_at);
    $("r-officer").textContent = d.authorising_officer;
    $("r-creator").textContent = d.created_by;
    $("r-cameras").textContent = cameras.length
      ? cameras
          .map((c) => `${c.camera_id}${c.status && c.status.state ? ` (${c.status.state})` : ""}`)
          .join(", ")
      : "none registered yet";
    $("r-watchlists").textContent = d.watchlist_ids.join(", ");
    const rate = d.expected_rate;
    $("r-size").textContent = rate
      ? `${fmtNum(rate.watchlist_size)} images`
      : "unknown (watchlist store unavailable)";
    $("r-threshold").textContent = thresholdText(d);
    $("r-source").textContent =
      SOURCE[d.threshold_source] + (d.threshold_reason ? `: ${d.threshold_reason}` : "");
    $("r-card").textContent = `${d.card_threshold} / ${d.card_threshold_floor}`;
    $("r-far").textContent =
      rate && rate.false_alerts_per_1000 !== null
        ? `${Number(rate.false_alerts_per_1000.toPrecision(3))} per 1,000 people passing the cameras` +
          (rate.searches_per_person > 1 ? ` (each searched up to ${rate.searches_per_person} times)` : "")
        : "unknown: the model card records no usable false match rate";
    $("r-tpir").textContent =
      rate && rate.tpir !== null
        ? `${(100 * rate.tpir).toFixed(1)}% of watchlist people who pass are expected to be found from one face` +
          (rate.tpir_person !== null && rate.tpir_person !== undefined
            ? `, ${(100 * rate.tpir_person).toFixed(1)}% when seen in ${rate.tpir_person_views} views`
            : "")
        : "not calibrated";
    $("r-basis").textContent = rate
      ? [rate.basis, rate.person_basis, rate.tpir_basis, rate.tpir_person_basis].filter(Boolean).join("; ")
      : "–";

    const mayDecide = d.status === "draft" && same(d.authorising_officer, state.me);
    show("decide", mayDecide);
    const mayPublish =
      ["authorised", "running", "stopped"].includes(d.status) && same(d.authorised_by, state.me);
    show("publish", mayPublish);
    if (mayPublish) {
      $("publish-state").textContent = d.published
        ? "Published: its figures appear on the public page once it is over."
        : "Not published.";
      $("publish-button").textContent = d.published
        ? "Withdraw from the public page"
        : "Publish on the public page";
    }
  }

  async function select(id) {
    $("decision-status").textContent = "";
    const [d, cams] = await Promise.all([json(depPath(id)), json("/api/v1/cameras").catch(() => [])]);
    render(
      d,
      cams.filter((c) => c.deployment_id === id),
    );
    await loadList();
  }

  async function act(what, path, method, body, done) {
    const id = state.selected.deployment_id;
    $("decision-status").textContent = `${what}…`;
    try {
      const d = await sendJson(`${depPath(id)}/${path}`, method, body);
      await select(id);
      $("decision-status").textContent = done(d);
    } catch (err) {
      $("decision-status").textContent = `Not recorded: ${err.message}`;
    }
  }

  function bind() {
    $("authorise-button").addEventListener("click", () =>
      act("Authorising", "authorise", "POST", {}, (d) => `Authorised. Status: ${d.status}.`),
    );
    $("refuse-button").addEventListener("click", () => {
      const reason = $("refuse-reason").value.trim();
      if (!reason) {
        $("decision-status").textContent = "Give a reason for refusing: it is recorded in the audit log.";
        $("refuse-reason").focus();
        return;
      }
      act("Refusing", "refuse", "POST", { reason }, (d) => `Refused. Status: ${d.status}.`);
    });
    $("publish-button").addEventListener("click", () => {
      const publish = !state.selected.published;
      act("Saving", "published", "PUT", { published: publish }, (d) =>
        d.published ? "Published on the public transparency page." : "Withdrawn from the public page.",
      );
    });
  }

  window.LFR.page({
    role: "authorising-officer",
    init: async (session, first) => {
      state.me = session.name;
      if (first) bind();
      await loadList();
    },
  });
})();
