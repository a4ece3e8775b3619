// Shared by the role pages: sign-in with a bearer token held in this tab only, calls to the API with it,
// the navigation between the pages the token's roles may use, and small DOM helpers.
//
// Why every page checks its role at sign-in: a page only offers what its role may do, so an officer never
// sees buttons that would be refused; the API refuses them anyway (403), whatever the page shows.
"use strict";

window.LFR = (() => {
  const TOKEN_KEY = "lfr.console.token"; // shared with the operator console: one sign-in per tab
  const PAGES = [
    { href: "watchlists.html", text: "Watchlists", role: "watchlist-admin" },
    { href: "authorise.html", text: "Authorisations", role: "authorising-officer" },
    { href: "./", text: "Alerts", role: "operator" },
    { href: "field.html", text: "Field view", role: "operator" },
    { href: "audit.html", text: "Audit", role: "auditor" },
    { href: "ops.html", text: "Operations", role: "operations" },
    { href: "transparency.html", text: "Public record", role: null },
  ];
  const state = { token: sessionStorage.getItem(TOKEN_KEY) || "", session: null, signedOut: null };

  const $ = (id) => document.getElementById(id);

  class HttpError extends Error {
    constructor(status, detail, code) {
      super(detail || `HTTP ${status}`);
      this.status = status;
      this.code = code || "";
    }
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ Authorization: `Bearer ${state.token}` }, options.headers || {});
    const resp = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
    if (resp.status === 401) {
      signOut("Your session is no longer valid. Sign in again.");
      throw new HttpError(401, "unauthorised");
    }
    if (!resp.ok) {
      let detail = resp.statusText;
      try {
        const body = await resp.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (_) {
        /* keep the status text */
      }
      throw new HttpError(resp.status, detail, resp.headers.get("X-Error-Code"));
    }
    return resp;
  }

  async function json(path, options = {}) {
    return (await api(path, options)).json();
  }

  function sendJson(path, method, body) {
    return json(path, {
      method,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  // el("td", {className: "x", dataset: {id: 1}}, "text", child) — text is always set as text, never HTML.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k in node) node[k] = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function fmtTime(value) {
    if (value === null || value === undefined || value === "") return "–";
    const d = new Date(value);
    return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  }

  function fmtNum(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    return digits === undefined ? Number(x).toLocaleString() : Number(x).toFixed(digits);
  }

  // Images come as base64 in JSON; the CSP allows blob: images but not data: ones.
  const objectUrls = new Set();
  function b64Url(b64, type = "image/jpeg") {
    const raw = atob(b64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    objectUrls.add(url);
    return url;
  }

  // A chosen file (a photo to enrol) shown from a blob: URL, released with the others.
  function fileUrl(file) {
    const url = URL.createObjectURL(file);
    objectUrls.add(url);
    return url;
  }

  function releaseUrls() {
    for (const url of objectUrls) URL.revokeObjectURL(url);
    objectUrls.clear();
  }

  // A download of an authorised response (exports): fetched with the token, saved from a blob: URL.
  async function download(path, fallbackName) {
    const resp = await api(path);
    const disposition = resp.headers.get("Content-Disposition") || "";
    const m = /filename="([^"]+)"/.exec(disposition);
    const url = URL.createObjectURL(await resp.blob());
    const a = el("a", { href: url, download: m ? m[1] : fallbackName, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    return m ? m[1] : fallbackName;
  }

  function renderNav(roles) {
    const nav = $("nav");
    if (!nav) return;
    const here = location.pathname.split("/").pop() || "./";
    const links = PAGES.filter((p) => p.role === null || roles.includes(p.role)).map((p) =>
      el("a", { href: p.href, "aria-current": p.href === here ? "page" : "false" }, p.text),
    );
    nav.replaceChildren(...links);
    nav.hidden = false;
  }

  function signOut(message) {
    if (state.signedOut) state.signedOut();
    releaseUrls();
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = "";
    state.session = null;
    show("workspace", false);
    show("login-panel", true);
    show("signout", false);
    if ($("who")) $("who").textContent = "Signed out";
    if ($("nav")) $("nav").hidden = true;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  async function fetchSession(token) {
    const resp = await fetch("/api/v1/console/session", {
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
    });
    if (resp.status === 401) throw new Error("That token was not accepted.");
    if (!resp.ok) throw new Error(`The server answered ${resp.status}; try again.`);
    return resp.json();
  }

  // page({role, init, signedOut, refused}): wires sign-in. ``role`` is the role a token must hold, or a list
  // of roles of which it must hold one (``refused`` is then the message for a token without any).
  // ``init(session, first, restored)`` runs each time a token is known to qualify: ``first`` the first time
  // in this page, to bind its event handlers once; ``restored`` when the tab already held the token as the
  // page loaded. ``signedOut()``, if given, runs when the page signs out (the button, or a token the API no
  // longer accepts).
  function page({ role, init, signedOut, refused }) {
    let entered = 0;
    const roles = Array.isArray(role) ? role : [role];
    state.signedOut = signedOut || null;
    const enter = async (token, restored) => {
      const session = await fetchSession(token);
      if (!session.roles.some((r) => roles.includes(r))) {
        throw new Error(refused || `That token does not hold the ${role} role.`);
      }
      state.token = token;
      state.session = session;
      sessionStorage.setItem(TOKEN_KEY, token);
      show("login-panel", false);
      show("workspace", true);
      show("signout", true);
      if ($("who")) $("who").textContent = `Signed in as ${session.name}`;
      renderNav(session.roles);
      entered += 1;
      await init(session, entered === 1, restored);
    };
    document.addEventListener("DOMContentLoaded", () => {
      $("login-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        $("login-error").textContent = "";
        const token = $("token").value.trim();
        try {
          await enter(token, false);
          $("token").value = "";
        } catch (err) {
          state.token = "";
          $("login-error").textContent = err.message;
        }
      });
      $("signout").addEventListener("click", () => signOut(""));
      if (state.token) {
        enter(state.token, true).catch((err) => signOut(err.message));
      } else {
        $("token").focus();
      }
    });
  }

  return {
    $,
    api,
    json,
    sendJson,
    el,
    show,
    fmtTime,
    fmtNum,
    b64Url,
    fileUrl,
    releaseUrls,
    download,
    page,
    HttpError,
    session: () => state.session,
  };
})();
