// Queues: pending and running work per task queue, plus the workers polling each one.

import { api } from "./api.js";
import { sparkline } from "./charts.js";
import { seriesQuery } from "./metrics.js";
import { emptyState, h, liveRows, pageHeader, table } from "./ui.js";

const COLS = [
  ["pending_workflows", "Pending workflows"],
  ["running_workflows", "Running workflows"],
  ["pending_activities", "Pending activities"],
  ["running_activities", "Running activities"],
  ["workers", "Workers"],
];

export async function render(root, ctx) {
  const { ns } = ctx;
  root.append(pageHeader("Queues", `Task queues in namespace ${ns} (refreshes every 3 s)`));
  const totals = h("div", { class: "stats" });
  const { wrap, tbody } = table([{ label: "Queue" }, ...COLS.map(([, l]) => ({ label: l, class: "num" })), { label: "Depth, last hour", class: "spark-col" }], { caption: "Queues", className: "queues-table" });
  let history = {}; // queue -> ready-task depth per 10 s (GET /metrics/series; {} when metrics are off)
  const spark = (q) => sparkline(history[q]?.depth || [], { label: `Queue ${q} depth` });
  const card = h("div", { class: "card card-flush" }, wrap);
  const empty = emptyState("No queues yet", "A queue appears once work is sent to it or a worker polls it.");
  root.append(totals, card);

  function row(q) {
    const tr = h("tr", {}, h("td", { class: "mono" }, h("strong", {}, q.queue)), COLS.map(([k]) => h("td", { class: `num${q[k] ? "" : " muted"}`, "data-col": k }, String(q[k] ?? 0))), h("td", { class: "spark-col", "data-col": "spark" }, spark(q.queue)));
    return tr;
  }
  function update(tr, q) {
    tr.querySelector('[data-col="spark"]')?.replaceChildren(spark(q.queue));
    for (const [k] of COLS) {
      const td = tr.querySelector(`[data-col="${k}"]`);
      const v = String(q[k] ?? 0);
      if (td.textContent !== v) {
        td.textContent = v;
        td.classList.toggle("muted", !q[k]);
        td.classList.remove("flash");
        void td.offsetWidth;
        td.classList.add("flash");
      }
    }
  }

  const load = liveRows({
    ctx, card, wrap, empty, tbody,
    fetch: async () => {
      const [rows, series] = await Promise.all([api("/queues", { query: { namespace: ns } }), seriesQuery(ns).catch(() => null)]);
      history = series?.queues || {};
      return rows;
    },
    key: (q) => q.queue,
    create: row,
    update,
    after: (rows) => {
      totals.replaceChildren(
        ...COLS.slice(0, 4).map(([k, l]) => h("div", { class: "stat card" }, h("div", { class: "stat-value" }, String(rows.reduce((a, q) => a + (Number(q[k]) || 0), 0))), h("div", { class: "stat-label muted" }, l))),
      );
    },
  });

  await load();
  const poll = setInterval(load, 3000);
  return () => clearInterval(poll);
}
