// Workers: identity, queue, namespace, registered workflow/activity types, last heartbeat (relative,
// ticking live) with a freshness dot.

import { api } from "./api.js";
import { emptyState, h, liveRows, pageHeader, relTime, table, timeEl } from "./ui.js";

function health(w, now = Date.now() / 1000) {
  const interval = Number(w.heartbeat_interval_secs) || 10;
  const age = now - Number(w.last_heartbeat || 0);
  if (age <= Math.max(3 * interval, 30)) return ["ok", "healthy"];
  if (age <= 90) return ["stale", "late heartbeat"];
  return ["lost", "no recent heartbeat"];
}

function names(v) {
  if (!v) return [];
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === "string") {
    try {
      const p = JSON.parse(v);
      return Array.isArray(p) ? p.map(String) : [v];
    } catch {
      return [v];
    }
  }
  return [];
}

export async function render(root, ctx) {
  const { ns } = ctx;
  const count = h("span", {}, `Namespace ${ns}`);
  root.append(pageHeader("Workers", count));
  const { wrap, tbody } = table(
    [{ label: "Identity" }, { label: "Queue" }, { label: "Namespace", class: "hide-sm" }, { label: "Handles", class: "hide-sm" }, { label: "Last heartbeat" }, { label: "Registered", class: "hide-sm" }],
    { caption: "Workers", className: "workers-table" },
  );
  const card = h("div", { class: "card card-flush" }, wrap);
  const empty = emptyState("No workers connected", "Workers appear here when they register with the engine (assay run worker.lua, or the Python SDK).");
  root.append(card);

  function row(w) {
    const [cls, label] = health(w);
    const tr = h(
      "tr",
      {},
      h("td", {}, h("span", { class: `dot dot-${cls}`, title: label, role: "img", "aria-label": label }), h("strong", {}, w.identity), h("div", { class: "muted small mono" }, w.id)),
      h("td", { class: "mono" }, w.task_queue),
      h("td", { class: "hide-sm" }, w.namespace),
      h("td", { class: "hide-sm" }, handles(w)),
      h("td", { class: "cell-hb" }, timeEl(w.last_heartbeat)),
      h("td", { class: "hide-sm" }, timeEl(w.registered_at)),
    );
    tr._hb = w.last_heartbeat;
    return tr;
  }

  function handles(w) {
    const wfs = names(w.workflows);
    const acts = names(w.activities);
    if (!wfs.length && !acts.length) return h("span", { class: "muted" }, "any");
    return h("div", { class: "tags" }, wfs.map((n) => h("span", { class: "tag", title: "workflow" }, n)), acts.map((n) => h("span", { class: "tag tag-alt", title: "activity" }, n)));
  }

  const load = liveRows({
    ctx, card, wrap, empty, tbody,
    fetch: () => api("/workers", { query: { namespace: ns } }),
    key: (w) => w.id,
    create: row,
    update: (tr, w) => (tr._hb === w.last_heartbeat ? undefined : row(w)),
    after: (rows) => {
      count.textContent = `${rows.length} worker${rows.length === 1 ? "" : "s"} in namespace ${ns}`;
    },
  });

  await load();
  const poll = setInterval(load, 3000);
  // Refresh the health dots between polls (relative times tick globally).
  const tick = setInterval(() => {
    for (const tr of tbody.querySelectorAll("tr")) {
      const dot = tr.querySelector(".dot");
      if (!dot || tr._hb === undefined) continue;
      const [cls, label] = health({ last_heartbeat: tr._hb });
      dot.className = `dot dot-${cls}`;
      dot.setAttribute("aria-label", label);
      dot.title = `${label} (${relTime(tr._hb)})`;
    }
  }, 1000);
  return () => {
    clearInterval(poll);
    clearInterval(tick);
  };
}
