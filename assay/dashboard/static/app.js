// Dashboard shell: path routing under /workflow/, namespace picker, theme, sign-in, reachability
// banner, live-stream indicator and the engine version in the footer.

import { api, getToken, onAuthRequired, onReachability, setToken } from "./components/api.js";
import * as live from "./components/live.js";
import { DEFAULT_NAMESPACE } from "./components/protocol.js";
import { clear, errorState, h, tickRelativeTimes, toast } from "./components/ui.js";
import * as workflows from "./components/workflows.js";
import * as detail from "./components/detail.js";
import * as schedules from "./components/schedules.js";
import * as workers from "./components/workers.js";
import * as queues from "./components/queues.js";
import * as metrics from "./components/metrics.js";
import * as settings from "./components/settings.js";

const BASE = "/workflow";
const VIEWS = { workflows, schedules, workers, queues, metrics, settings };
const TITLES = { workflows: "Workflows", schedules: "Schedules", workers: "Workers", queues: "Queues", metrics: "Metrics", settings: "Settings", detail: "Workflow" };
const main = document.getElementById("main");
const baseTitle = document.title;
let cleanup = null;
let renderSeq = 0;
let current = null;

export function defaultNamespace() {
  return document.body.dataset.defaultNamespace || DEFAULT_NAMESPACE;
}

// ---- routing -----------------------------------------------------------------------------------
function parse() {
  const rest = location.pathname.startsWith(`${BASE}/`) ? location.pathname.slice(BASE.length + 1) : "";
  const parts = rest.split("/").filter(Boolean);
  const params = new URLSearchParams(location.search);
  const ns = params.get("ns") || defaultNamespace();
  if (parts[0] === "workflows" && parts.length > 1) {
    return { view: "detail", id: decodeURIComponent(parts.slice(1).join("/")), params, ns };
  }
  const view = VIEWS[parts[0]] ? parts[0] : "workflows";
  return { view, params, ns };
}

// Builds a dashboard URL that keeps the current namespace.
export function href(path, query = {}, ns = current?.ns) {
  const url = new URL(`${BASE}/${path.replace(/^\//, "")}`, location.origin);
  const nsv = ns || defaultNamespace();
  if (nsv) url.searchParams.set("ns", nsv);
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  return url.pathname + url.search;
}

export function workflowHref(id, query = {}) {
  return href(`workflows/${encodeURIComponent(id)}`, query);
}

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

// Updates the query string of the current view without re-rendering it.
export function setQuery(params) {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  history.replaceState(null, "", url.pathname + url.search);
}

function convertHashRoute() {
  // Accept hash deep links too: /workflow/#/schedules?ns=main -> /workflow/schedules?ns=main
  if (location.hash.startsWith("#/")) {
    const target = new URL(location.hash.slice(1), location.origin);
    history.replaceState(null, "", `${BASE}${target.pathname}${target.search}`);
  }
}

async function render() {
  const seq = ++renderSeq;
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.warn(e);
    }
    cleanup = null;
  }
  const route = parse();
  const nsChanged = !current || current.ns !== route.ns;
  current = route;
  highlightNav(route.view === "detail" ? "workflows" : route.view);
  closeSidebar();
  if (nsChanged) {
    live.connect(route.ns);
    syncNamespaceSelect();
  }
  document.title = route.view === "detail" ? [route.id, baseTitle].filter(Boolean).join(" · ") : baseTitle;
  clear(main);
  main.setAttribute("aria-busy", "true");
  const ctx = {
    ...route,
    href,
    workflowHref,
    navigate,
    setQuery,
    rerender: render,
    isCurrent: () => seq === renderSeq,
    theme: { get: getTheme, set: setTheme },
    loadNamespaces,
    version: () => engineVersion,
    signIn: showSignIn,
    apiDocsUrl: document.body.dataset.apiDocsUrl || "",
  };
  const mod = route.view === "detail" ? detail : VIEWS[route.view];
  try {
    const c = await mod.render(main, ctx);
    if (seq !== renderSeq) {
      if (typeof c === "function") c();
      return;
    }
    cleanup = typeof c === "function" ? c : null;
  } catch (e) {
    if (seq === renderSeq) {
      clear(main);
      main.append(errorState(e));
    }
  } finally {
    if (seq === renderSeq) main.removeAttribute("aria-busy");
  }
}

function highlightNav(view) {
  for (const a of document.querySelectorAll(".nav [data-nav]")) {
    const on = a.dataset.nav === view;
    a.classList.toggle("active", on);
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
    a.setAttribute("href", href(a.dataset.nav === "workflows" ? "" : a.dataset.nav));
  }
  const brand = document.querySelector(".brand");
  if (brand) brand.setAttribute("href", href(""));
}

document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !(url.pathname === BASE + "/" || url.pathname.startsWith(`${BASE}/`))) return;
  ev.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

// ---- sidebar (mobile drawer) -------------------------------------------------------------------
const sidebar = document.getElementById("sidebar");
const scrim = document.getElementById("scrim");
const menuBtn = document.getElementById("menu-toggle");
function openSidebar() {
  sidebar.classList.add("open");
  scrim.hidden = false;
  menuBtn.setAttribute("aria-expanded", "true");
  sidebar.querySelector(".nav-link")?.focus();
}
function closeSidebar() {
  if (!sidebar.classList.contains("open")) return;
  sidebar.classList.remove("open");
  scrim.hidden = true;
  menuBtn.setAttribute("aria-expanded", "false");
}
menuBtn.addEventListener("click", () => (sidebar.classList.contains("open") ? closeSidebar() : openSidebar()));
scrim.addEventListener("click", closeSidebar);
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && sidebar.classList.contains("open")) {
    closeSidebar();
    menuBtn.focus();
  }
});

// ---- theme -------------------------------------------------------------------------------------
export function getTheme() {
  return document.documentElement.getAttribute("data-theme") === "dark" ? "dark" : "light";
}
export function setTheme(theme) {
  document.documentElement.setAttribute("data-theme", theme);
  try {
    localStorage.setItem("assay-theme", theme);
  } catch {
    /* not persisted */
  }
  syncThemeButton();
}
const themeBtn = document.getElementById("theme-toggle");
function syncThemeButton() {
  const next = getTheme() === "dark" ? "light" : "dark";
  themeBtn.querySelector(".nav-label").textContent = next === "dark" ? "Dark theme" : "Light theme";
  themeBtn.setAttribute("aria-label", `Switch to ${next} theme`);
  themeBtn.setAttribute("aria-pressed", getTheme() === "dark" ? "true" : "false");
}
themeBtn.addEventListener("click", () => setTheme(getTheme() === "dark" ? "light" : "dark"));
syncThemeButton();

// ---- namespaces --------------------------------------------------------------------------------
const nsSelect = document.getElementById("ns-select");
let namespaces = [];
export async function loadNamespaces() {
  try {
    const rows = await api("/namespaces");
    namespaces = (rows || []).map((r) => r.name);
  } catch {
    /* keep the previous list */
  }
  syncNamespaceSelect();
  return namespaces;
}
function syncNamespaceSelect() {
  const ns = current?.ns || defaultNamespace();
  const names = [...new Set([...namespaces, ns])].sort();
  clear(nsSelect);
  for (const n of names) nsSelect.append(h("option", { value: n, selected: n === ns }, n));
}
nsSelect.addEventListener("change", () => {
  const route = parse();
  const view = route.view === "detail" ? "" : route.view === "workflows" ? "" : route.view;
  navigate(href(view, {}, nsSelect.value));
});

// ---- sign-in -----------------------------------------------------------------------------------
let signinOpen = false;
const signOutBtn = document.getElementById("sign-out");
function syncSignOut() {
  signOutBtn.hidden = !getToken();
}
signOutBtn.addEventListener("click", () => {
  setToken("");
  syncSignOut();
  toast("Signed out", "info");
  live.reconnect();
  render();
});

export function showSignIn(message) {
  if (signinOpen) return;
  signinOpen = true;
  const input = h("input", { id: "signin-token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const err = h("p", { class: "form-error", role: "alert", hidden: !message }, message || "");
  const form = h(
    "form",
    { class: "dialog-form", method: "dialog" },
    h("h2", { class: "dialog-title", id: "signin-title" }, "Sign in"),
    h("p", { class: "dialog-desc" }, "This engine requires authentication. Paste an API key or a bearer token (JWT). It is kept in this browser tab only (sessionStorage)."),
    h("div", { class: "field" }, h("label", { for: "signin-token" }, "API key or bearer token"), input),
    err,
    h("div", { class: "dialog-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Sign in")),
  );
  const dlg = h("dialog", { class: "dialog", id: "signin", "aria-labelledby": "signin-title" }, form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      err.textContent = "Enter an API key or token";
      err.hidden = false;
      return;
    }
    setToken(token);
    try {
      await api("/namespaces", { quiet: true });
    } catch (e) {
      err.textContent = e.status === 401 ? `Rejected: ${e.message}` : e.message;
      err.hidden = false;
      setToken("");
      return;
    }
    dlg.close();
    toast("Signed in");
    syncSignOut();
    live.reconnect();
    loadNamespaces();
    render();
  });
  dlg.addEventListener("cancel", (ev) => ev.preventDefault()); // nothing works without a token
  dlg.addEventListener("close", () => {
    signinOpen = false;
    dlg.remove();
  });
  document.body.append(dlg);
  dlg.showModal();
  input.focus();
}
onAuthRequired((msg) => showSignIn(getToken() ? `Your token was rejected: ${msg}` : null));

// ---- reachability ------------------------------------------------------------------------------
const banner = document.getElementById("banner");
let unreachable = false;
let healthTimer = null;
onReachability((ok) => {
  if (ok && unreachable) {
    unreachable = false;
    banner.hidden = true;
    clearInterval(healthTimer);
    toast("Connection to the engine restored", "info");
    loadVersion();
    render();
  } else if (!ok && !unreachable) {
    unreachable = true;
    clear(banner);
    banner.append(
      h("strong", {}, "Engine unreachable. "),
      h("span", {}, `Cannot reach ${location.origin}; retrying every few seconds…`),
      h("button", { type: "button", class: "btn btn-xs", onclick: probe }, "Retry now"),
    );
    banner.hidden = false;
    clearInterval(healthTimer);
    healthTimer = setInterval(probe, 3000);
  }
});
async function probe() {
  try {
    await api("/health", { quiet: true });
  } catch {
    /* still down */
  }
}

// ---- live indicator + version ------------------------------------------------------------------
const liveEl = document.getElementById("live-indicator");
live.onStatus((s) => {
  liveEl.dataset.state = s;
  liveEl.querySelector(".live-text").textContent = { live: "Live", connecting: "Connecting…", offline: "Offline", off: "Offline" }[s] || s;
  liveEl.title = s === "live" ? "Receiving live updates from the engine" : "Live updates paused; views refresh periodically";
});

export let engineVersion = null;
async function loadVersion() {
  try {
    engineVersion = await api("/version", { quiet: true });
    const el = document.getElementById("status-version");
    el.textContent = `v${engineVersion.version}${engineVersion.build_profile === "debug" ? " (debug)" : ""}`;
  } catch {
    /* footer stays empty until the engine answers */
  }
}

setInterval(() => tickRelativeTimes(main), 1000);

convertHashRoute();
syncSignOut();
loadVersion();
loadNamespaces();
render();
