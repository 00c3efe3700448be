// Workflows list: filters (status, type, search attributes) in the URL, paging, live updates from the
// event stream (rows appear and change status in place), Start-workflow form, per-row actions.

import { api } from "./api.js";
import * as live from "./live.js";
import { DEFAULT_TASK_QUEUE, WorkflowStatus } from "./protocol.js";
import { rowActions } from "./actions.js";
import {
  clear,
  debounce,
  emptyState,
  errorState,
  fmtDuration,
  formDialog,
  h,
  pageHeader,
  parseJsonField,
  reconcileRows,
  setBadge,
  STATUSES,
  statusBadge,
  table,
  TERMINAL,
  timeEl,
  toast,
} from "./ui.js";

const PAGE_SIZE = 25;

export async function render(root, ctx) {
  const { params, ns } = ctx;
  const filters = {
    status: (params.get("status") || "").toUpperCase(),
    type: params.get("type") || "",
    sa: params.get("sa") || "",
    stuck: params.get("stuck") === "1",
  };
  let page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  // Pages by keyset cursor (X-Next-Cursor): cursors[p] starts page p. A deep link without one uses offset.
  const cursors = { 1: null };
  if (page > 1 && params.get("cursor")) cursors[page] = params.get("cursor");
  let nextCursor = null;
  let searchAttrs;
  let filterError = null;
  try {
    searchAttrs = parseJsonField(filters.sa, { object: true, what: "Search attributes" });
  } catch (e) {
    filterError = e.message;
  }

  const startBtn = h("button", { type: "button", class: "btn btn-primary", onclick: () => openStartForm() }, "+ Start workflow");
  const countEl = h("span", {}, `Namespace ${ns}`);
  root.append(pageHeader("Workflows", countEl, startBtn));

  // ---- filters
  const statusSel = h(
    "select",
    { id: "f-status", name: "status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s.replace("_", " "))),
  );
  const typeIn = h("input", { id: "f-type", name: "type", type: "search", value: filters.type, placeholder: "exact type name", autocomplete: "off" });
  const saIn = h("input", { id: "f-sa", name: "sa", type: "search", value: filters.sa, placeholder: '{"env": "prod"}', class: "mono", autocomplete: "off", spellcheck: "false", "aria-invalid": filterError ? "true" : null });
  const filterForm = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter workflows" },
    h("div", { class: "field field-inline" }, h("label", { for: "f-status" }, "Status"), statusSel),
    h("div", { class: "field field-inline" }, h("label", { for: "f-type" }, "Type"), typeIn),
    h("div", { class: "field field-inline field-grow" }, h("label", { for: "f-sa" }, "Search attributes"), saIn),
    h(
      "div",
      { class: "filter-buttons" },
      h("button", { type: "submit", class: "btn" }, "Apply"),
      h("button", { type: "button", class: "btn btn-ghost", onclick: () => ctx.navigate(ctx.href("")) }, "Clear"),
    ),
  );
  filterForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    try {
      parseJsonField(saIn.value, { object: true, what: "Search attributes" });
    } catch (e) {
      saIn.setAttribute("aria-invalid", "true");
      toast(e.message, "error");
      saIn.focus();
      return;
    }
    ctx.navigate(ctx.href("", { status: statusSel.value, type: typeIn.value.trim(), sa: saIn.value.trim() }));
  });
  statusSel.addEventListener("change", () => filterForm.requestSubmit());
  root.append(filterForm);
  if (filterError) root.append(h("p", { class: "form-error", role: "alert" }, filterError));

  // ---- stuck banner: workflows whose workflow tasks keep failing
  const stuckBox = h("div", { class: "stuck-banner", role: "alert", hidden: true });
  root.append(stuckBox);
  async function loadStuck() {
    let stuck = [];
    try {
      stuck = await api("/workflows", { query: { namespace: ns, stuck: "true", limit: 101 } });
    } catch {
      return;
    }
    if (!ctx.isCurrent()) return;
    stuckBox.hidden = !stuck.length && !filters.stuck;
    const n = stuck.length > 100 ? "100+" : String(stuck.length);
    stuckBox.replaceChildren(
      h("strong", {}, "Stuck"),
      ` — ${n} workflow${stuck.length === 1 ? "" : "s"} in ${ns} whose workflow tasks keep failing (the deployed code cannot replay ${stuck.length === 1 ? "its" : "their"} history). `,
      filters.stuck ? h("a", { href: ctx.href("") }, "Show all workflows") : h("a", { href: ctx.href("", { stuck: "1" }) }, "Show them"),
    );
  }

  // ---- table
  const { wrap, tbody } = table(
    [
      { label: "Workflow ID" },
      { label: "Type" },
      { label: "Status" },
      { label: "Queue", class: "hide-sm" },
      { label: "Started" },
      { label: "Duration", class: "hide-sm" },
      { label: "Actions", class: "col-actions" },
    ],
    { caption: "Workflows", className: "wf-table" },
  );
  const body = h("div", { class: "card card-flush" }, wrap);
  const prevBtn = h("button", { type: "button", class: "btn", onclick: () => go(page - 1) }, "← Previous");
  const nextBtn = h("button", { type: "button", class: "btn", onclick: () => {
    cursors[page + 1] = nextCursor;
    go(page + 1);
  } }, "Next →");
  const pageInfo = h("span", { class: "muted", "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": "Pagination", hidden: true }, prevBtn, pageInfo, nextBtn);
  root.append(body, pager);

  let rows = [];
  let loaded = false;

  function go(p) {
    page = Math.max(1, p);
    ctx.setQuery({ page: page > 1 ? page : null, cursor: (page > 1 && cursors[page]) || null });
    load();
  }

  function rowFor(r) {
    const badge = statusBadge(r.status);
    const tr = h(
      "tr",
      { "data-id": r.id },
      h("td", { class: "cell-id" }, h("a", { href: ctx.workflowHref(r.id), class: "mono wf-link", title: r.id }, r.id), r.stuck ? h("span", { class: "tag tag-stuck", title: r.stuck.reason }, "stuck") : null, r.parent_id ? h("span", { class: "tag", title: `child of ${r.parent_id}` }, "child") : null, r.archived_at ? h("span", { class: "tag tag-archived", title: `archived to ${r.archive_uri || "the archive"}` }, "archived") : null),
      h("td", { class: "cell-type" }, r.workflow_type),
      h("td", { class: "cell-status" }, badge),
      h("td", { class: "cell-queue hide-sm mono" }, r.task_queue),
      h("td", { class: "cell-created" }, timeEl(r.created_at)),
      h("td", { class: "cell-duration hide-sm" }, durationText(r)),
      h("td", { class: "cell-actions col-actions" }, rowActions(r, refreshSoon)),
    );
    tr._rec = r;
    return tr;
  }

  function updateRow(tr, r) {
    const old = tr._rec || {};
    tr._rec = r;
    setBadge(tr.querySelector(".cell-status .badge"), r.status);
    const dur = durationText(r);
    const durCell = tr.querySelector(".cell-duration");
    if (durCell.textContent !== dur) durCell.textContent = dur;
    if (TERMINAL.has(old.status) !== TERMINAL.has(r.status)) {
      const cell = tr.querySelector(".cell-actions");
      clear(cell).append(rowActions(r, refreshSoon));
    }
  }

  async function load() {
    let data;
    let next = null;
    const cursor = cursors[page] || undefined;
    try {
      data = await api("/workflows", {
        onHeaders: (hd) => {
          next = hd.get("X-Next-Cursor");
        },
        query: {
          namespace: ns,
          status: filters.status || undefined,
          type: filters.type || undefined,
          search_attrs: searchAttrs ? JSON.stringify(searchAttrs) : undefined,
          stuck: filters.stuck ? "true" : undefined,
          limit: PAGE_SIZE,
          cursor,
          offset: cursor || page === 1 ? undefined : (page - 1) * PAGE_SIZE,
        },
      });
    } catch (e) {
      if (!loaded) {
        clear(body).append(errorState(e));
      }
      return;
    }
    if (!ctx.isCurrent()) return;
    const animate = loaded;
    loaded = true;
    nextCursor = next;
    const hasMore = Boolean(next);
    rows = data.slice(0, PAGE_SIZE);
    if (!body.contains(wrap)) clear(body).append(wrap);
    reconcileRows(tbody, rows, (r) => r.id, rowFor, updateRow, { animate });
    let empty = body.querySelector(".empty");
    if (!rows.length && !empty) {
      const anyFilter = filters.status || filters.type || filters.sa || filters.stuck;
      body.append(emptyState(anyFilter ? "No workflows match these filters" : "No workflows yet", anyFilter ? "Clear the filters to see everything in this namespace." : "Start one with the button above, the CLI or the API."));
    } else if (rows.length && empty) empty.remove();
    const first = rows.length ? (page - 1) * PAGE_SIZE + 1 : 0;
    pageInfo.textContent = rows.length ? `${first}–${first + rows.length - 1}${hasMore ? "+" : ""}` : page > 1 ? `Page ${page}` : "";
    prevBtn.disabled = page <= 1;
    nextBtn.disabled = !hasMore;
    pager.hidden = page <= 1 && !hasMore;
  }

  // a busy stream still re-reads at least once a second
  const refreshSoon = debounce(
    () => {
      load();
      loadStuck();
    },
    150,
    1000,
  );

  // Live: patch a visible row straight from the event, then re-read the page (order + filters).
  const unsubscribe = live.subscribe((ev) => {
    const tr = tbody.querySelector(`tr[data-key="${CSS.escape(ev.workflow_id || "")}"]`);
    if (tr && ev.status) {
      const patch = { status: ev.status };
      if (ev.completed_at != null) patch.completed_at = ev.completed_at;
      updateRow(tr, { ...tr._rec, ...patch });
    }
    if (tr || page === 1) refreshSoon();
  });
  // Fallback while the stream is down.
  const poll = setInterval(() => {
    if (!live.isLive()) load();
  }, 5000);

  async function openStartForm(prefill = {}) {
    const res = await formDialog({
      title: "Start workflow",
      description: `Starts a new workflow in namespace ${ns}.`,
      submitLabel: "Start",
      fields: [
        { name: "workflow_type", label: "Workflow type", required: true, value: prefill.workflow_type || filters.type, placeholder: "e.g. OrderPipeline" },
        { name: "workflow_id", label: "Workflow ID", placeholder: "leave empty to generate one", help: "Must be unique across all namespaces." },
        { name: "task_queue", label: "Task queue", value: DEFAULT_TASK_QUEUE, required: true },
        { name: "input", label: "Input (JSON)", type: "json", rows: 5, placeholder: '{"order_id": 42}' },
        { name: "search_attributes", label: "Search attributes (JSON object)", type: "json", object: true, rows: 2, placeholder: '{"env": "prod"}' },
      ],
      onSubmit: async (v) => {
        const type = v.workflow_type.trim();
        const body = {
          workflow_type: type,
          workflow_id: v.workflow_id.trim() || `wf-${type.toLowerCase().replace(/[^a-z0-9]+/g, "-")}-${Date.now()}`,
          namespace: ns,
          task_queue: v.task_queue.trim() || DEFAULT_TASK_QUEUE,
        };
        if (v.input !== undefined) body.input = v.input;
        if (v.search_attributes !== undefined) body.search_attributes = v.search_attributes;
        const out = await api("/workflows", { method: "POST", body });
        return out;
      },
    });
    if (res) {
      toast(`Started ${res.workflow_id}`);
      refreshSoon();
    }
  }

  await Promise.all([load(), loadStuck()]);
  return () => {
    unsubscribe();
    clearInterval(poll);
    refreshSoon.cancel();
  };
}

function durationText(r) {
  if (!r.created_at) return "—";
  const end = r.completed_at ?? (TERMINAL.has(r.status) ? r.updated_at : null);
  if (end != null) return fmtDuration(end - r.created_at);
  if (TERMINAL.has(r.status)) return "—";
  return r.status === WorkflowStatus.PENDING ? "queued" : "running";
}
