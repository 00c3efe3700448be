// Schedules: list (timezone, paused, next run + preview), Create / Edit (PATCH) / Pause / Resume /
// Delete / Trigger now.

import { api, enc } from "./api.js";
import * as live from "./live.js";
import { DEFAULT_OVERLAP_POLICY, DEFAULT_TASK_QUEUE, OverlapPolicy, SseEvent } from "./protocol.js";
import { confirmDialog, emptyState, formDialog, h, liveRows, pageHeader, pretty, table, timeEl, toast } from "./ui.js";

const OVERLAP = [
  [OverlapPolicy.skip, `${OverlapPolicy.skip} — don't start while the previous run is open`],
  [OverlapPolicy.queue, `${OverlapPolicy.queue} — start after the previous run ends`],
  [OverlapPolicy.cancel_old, `${OverlapPolicy.cancel_old} — cancel the previous run, then start`],
  [OverlapPolicy.allow_all, `${OverlapPolicy.allow_all} — always start`],
];

function zoneList() {
  const id = "tz-list";
  if (!document.getElementById(id)) {
    let zones = ["UTC"];
    try {
      zones = ["UTC", ...Intl.supportedValuesOf("timeZone")];
    } catch {
      /* older browsers: free text only */
    }
    document.body.append(h("datalist", { id }, zones.map((z) => h("option", { value: z }))));
  }
  return id;
}

export async function render(root, ctx) {
  const { ns } = ctx;
  const createBtn = h("button", { type: "button", class: "btn btn-primary", onclick: () => openForm(null) }, "+ New schedule");
  root.append(pageHeader("Schedules", `Cron-driven workflow starts in namespace ${ns}`, createBtn));
  const { wrap, tbody } = table(
    [
      { label: "Name" },
      { label: "Cron" },
      { label: "Timezone" },
      { label: "State" },
      { label: "Next run" },
      { label: "Last run", class: "hide-sm" },
      { label: "Actions", class: "col-actions" },
    ],
    { caption: "Schedules", className: "sched-table" },
  );
  const card = h("div", { class: "card card-flush" }, wrap);
  root.append(card);
  const empty = emptyState("No schedules yet", "Create one to start a workflow on a cron expression, in any timezone.");
  const load = liveRows({
    ctx, card, wrap, empty, tbody,
    fetch: () => api("/schedules", { query: { namespace: ns } }),
    key: (s) => s.name,
    create: (s) => createRow(s),
    update: (tr, s) => (tr._sig === JSON.stringify(s) ? undefined : createRow(s)),
  });

  function createRow(s) {
    const tr = h(
      "tr",
      { "data-name": s.name },
      h("td", {}, h("strong", {}, s.name), h("div", { class: "muted small" }, s.workflow_type, " · ", h("span", { class: "mono" }, s.task_queue))),
      h("td", {}, h("code", {}, s.cron_expr)),
      h("td", { class: "cell-tz" }, s.timezone),
      h("td", {}, s.paused ? h("span", { class: "badge badge-paused" }, "Paused") : h("span", { class: "badge badge-active" }, "Active")),
      h("td", { class: "cell-next" }, nextRun(s)),
      h("td", { class: "hide-sm" }, s.last_run_at ? timeEl(s.last_run_at) : h("span", { class: "muted" }, "never"), s.last_workflow_id ? h("div", {}, h("a", { href: ctx.workflowHref(s.last_workflow_id), class: "mono small truncate", title: s.last_workflow_id }, s.last_workflow_id)) : null),
      h(
        "td",
        { class: "col-actions" },
        h(
          "div",
          { class: "row-actions" },
          h("button", { type: "button", class: "btn btn-xs", "aria-label": `Trigger ${s.name} now`, onclick: () => trigger(s) }, "Trigger now"),
          s.paused
            ? h("button", { type: "button", class: "btn btn-xs", "aria-label": `Resume ${s.name}`, onclick: () => setPaused(s, false) }, "Resume")
            : h("button", { type: "button", class: "btn btn-xs", "aria-label": `Pause ${s.name}`, onclick: () => setPaused(s, true) }, "Pause"),
          h("button", { type: "button", class: "btn btn-xs", "aria-label": `Edit ${s.name}`, onclick: () => openForm(s) }, "Edit"),
          h("button", { type: "button", class: "btn btn-xs btn-danger-ghost", "aria-label": `Delete ${s.name}`, onclick: () => remove(s) }, "Delete"),
        ),
      ),
    );
    tr._sig = JSON.stringify(s);
    return tr;
  }

  function nextRun(s) {
    if (s.paused) return h("span", { class: "muted" }, "paused");
    const runs = Array.isArray(s.next_runs) ? s.next_runs : [];
    const first = s.next_run_at ?? runs[0];
    if (!first) return h("span", { class: "muted" }, "—");
    // next_runs are ISO strings in the schedule's own zone: show its wall-clock time.
    const wall = (iso) => iso.slice(0, 16).replace("T", " ");
    const main = h("span", {}, timeEl(first), runs[0] ? h("div", { class: "muted small mono", title: runs[0] }, wall(runs[0])) : null);
    if (runs.length < 2) return main;
    return h("details", { class: "next-runs" }, h("summary", {}, main), h("ol", { class: "small mono" }, runs.map((r) => h("li", {}, r.replace("T", " ")))));
  }

  async function mutate(fn, ok) {
    try {
      const out = await fn();
      toast(ok);
      await load();
      return out;
    } catch (e) {
      toast(e.message, "error");
      return null;
    }
  }

  function trigger(s) {
    return mutate(async () => {
      const res = await api(`/schedules/${enc(s.name)}/trigger`, { method: "POST", query: { namespace: ns }, body: {} });
      return res;
    }, `Triggered ${s.name}`);
  }

  function setPaused(s, paused) {
    return mutate(() => api(`/schedules/${enc(s.name)}/${paused ? "pause" : "resume"}`, { method: "POST", query: { namespace: ns }, body: {} }), `${paused ? "Paused" : "Resumed"} ${s.name}`);
  }

  async function remove(s) {
    const ok = await confirmDialog({ title: `Delete schedule ${s.name}?`, message: "Future runs stop. Workflows it already started keep running.", confirmLabel: "Delete", danger: true });
    if (ok) await mutate(() => api(`/schedules/${enc(s.name)}`, { method: "DELETE", query: { namespace: ns } }), `Deleted ${s.name}`);
  }

  async function openForm(s) {
    const editing = !!s;
    const fields = [];
    if (!editing) {
      fields.push({ name: "name", label: "Name", required: true, placeholder: "nightly-report" });
      fields.push({ name: "workflow_type", label: "Workflow type", required: true, placeholder: "NightlyReport" });
    }
    fields.push(
      { name: "cron_expr", label: "Cron expression", required: true, value: s?.cron_expr || "", placeholder: "0 0 * * * *", help: "6 or 7 fields with seconds first (sec min hour day month weekday [year]); classic 5-field crontab also works." },
      { name: "timezone", label: "Timezone", required: true, value: s?.timezone || "UTC", list: zoneList(), help: "IANA name, e.g. Europe/Berlin" },
      { name: "task_queue", label: "Task queue", value: s?.task_queue || DEFAULT_TASK_QUEUE, required: true },
      { name: "overlap_policy", label: "Overlap policy", type: "select", value: s?.overlap_policy || DEFAULT_OVERLAP_POLICY, options: OVERLAP },
      { name: "input", label: "Input (JSON)", type: "json", rows: 4, value: s && s.input !== null && s.input !== undefined ? pretty(s.input) : "" },
    );
    const res = await formDialog({
      title: editing ? `Edit schedule ${s.name}` : "New schedule",
      submitLabel: editing ? "Save changes" : "Create schedule",
      fields,
      onSubmit: async (v) => {
        const body = { cron_expr: v.cron_expr.trim(), timezone: v.timezone.trim(), task_queue: v.task_queue.trim() || DEFAULT_TASK_QUEUE, overlap_policy: v.overlap_policy };
        if (v.input !== undefined) body.input = v.input;
        if (editing) return api(`/schedules/${enc(s.name)}`, { method: "PATCH", query: { namespace: ns }, body });
        return api("/schedules", { method: "POST", body: { ...body, name: v.name.trim(), workflow_type: v.workflow_type.trim(), namespace: ns } });
      },
    });
    if (res) {
      toast(editing ? `Saved ${s.name}` : `Created ${res.name}`);
      await load();
    }
  }

  await load();
  const poll = setInterval(load, 10000);
  // A fired schedule updates its last/next run: re-read on the engine's event.
  const unsubscribe = live.subscribe((ev) => {
    if (ev.event_type === SseEvent.schedule_triggered) load();
  });
  return () => {
    clearInterval(poll);
    unsubscribe();
  };
}
