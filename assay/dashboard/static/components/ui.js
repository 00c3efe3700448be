// Small DOM helpers shared by every view. Text always goes through textContent (never innerHTML),
// so engine data cannot inject markup.

import { TERMINAL_STATUSES, WorkflowStatus } from "./protocol.js";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "selected" || key === "disabled" || key === "hidden") el[key] = !!value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export const TERMINAL = new Set(TERMINAL_STATUSES);
export const STATUSES = Object.values(WorkflowStatus);

export function statusBadge(status) {
  const s = String(status || "UNKNOWN");
  return h("span", { class: `badge badge-${s.toLowerCase()}`, "data-status": s }, s.replace("_", " "));
}

export function setBadge(el, status) {
  const s = String(status || "UNKNOWN");
  if (el.dataset.status === s) return false;
  el.dataset.status = s;
  el.className = `badge badge-${s.toLowerCase()} badge-changed`;
  el.textContent = s.replace("_", " ");
  return true;
}

// ---- time --------------------------------------------------------------------------------------
export function toDate(ts) {
  if (ts === null || ts === undefined || ts === "") return null;
  const d = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function fmtTime(ts) {
  const d = toDate(ts);
  if (!d) return "—";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(secs) {
  if (secs === null || secs === undefined || !Number.isFinite(secs)) return "—";
  const s = Math.max(0, secs);
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${m % 60}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

export function relTime(ts, now = Date.now()) {
  const d = toDate(ts);
  if (!d) return "—";
  const diff = (d.getTime() - now) / 1000;
  const abs = Math.abs(diff);
  let text;
  if (abs < 2) return "just now";
  if (abs < 60) text = `${Math.round(abs)}s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)}m`;
  else if (abs < 86400) text = `${Math.floor(abs / 3600)}h`;
  else text = `${Math.floor(abs / 86400)}d`;
  return diff < 0 ? `${text} ago` : `in ${text}`;
}

// A <time> element whose relative text is refreshed by tickRelativeTimes().
export function timeEl(ts, { relative = true } = {}) {
  const d = toDate(ts);
  if (!d) return h("span", { class: "muted" }, "—");
  return h(
    "time",
    { datetime: d.toISOString(), title: fmtTime(ts), class: relative ? "rel-time" : null, "data-ts": d.getTime() },
    relative ? relTime(ts) : fmtTime(ts),
  );
}

export function tickRelativeTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("time.rel-time[data-ts]")) {
    const text = relTime(Number(el.dataset.ts) / 1000, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

// ---- JSON --------------------------------------------------------------------------------------
export function pretty(value) {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

// Pretty-printed JSON with light syntax colouring, built from text nodes only.
export function jsonBlock(value, { label } = {}) {
  const pre = h("pre", { class: "json", tabindex: "0", "aria-label": label || "JSON" });
  const text = pretty(value);
  const re = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) pre.append(text.slice(last, m.index));
    if (m[1]) {
      pre.append(h("span", { class: m[2] ? "j-key" : "j-str" }, m[1]));
      if (m[2]) pre.append(m[2]);
    } else if (m[3]) pre.append(h("span", { class: "j-lit" }, m[3]));
    else pre.append(h("span", { class: "j-num" }, m[4]));
    last = m.index + m[0].length;
  }
  if (last < text.length) pre.append(text.slice(last));
  return pre;
}

// Parses optional JSON text: "" -> undefined; throws Error with a readable message otherwise.
export function parseJsonField(text, { object = false, what = "value" } = {}) {
  const t = String(text || "").trim();
  if (!t) return undefined;
  let v;
  try {
    v = JSON.parse(t);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${e.message}`);
  }
  if (object && (v === null || typeof v !== "object" || Array.isArray(v))) {
    throw new Error(`${what} must be a JSON object, e.g. {"key": "value"}`);
  }
  return v;
}

// ---- feedback ----------------------------------------------------------------------------------
export function toast(message, kind = "success", { timeout = kind === "error" ? 7000 : 3500 } = {}) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const icon = { success: "✓", error: "✕", info: "i" }[kind] || "i";
  const el = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "toast-icon", "aria-hidden": "true" }, icon),
    h("span", { class: "toast-msg" }, message),
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: () => el.remove() }, "×"),
  );
  box.append(el);
  setTimeout(() => el.remove(), timeout);
  return el;
}

export function emptyState(title, hint) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), hint ? h("p", { class: "muted" }, hint) : null);
}

export function errorState(err) {
  return h("div", { class: "empty empty-error", role: "alert" }, h("p", { class: "empty-title" }, "Could not load"), h("p", { class: "muted" }, err?.message || String(err)));
}

// ---- dialogs -----------------------------------------------------------------------------------
let dialogSeq = 0;

// Generic form dialog. fields: [{name, label, type: text|textarea|select|json|number, value,
// placeholder, required, help, options: [[value, label]], object (json must be an object)}].
// onSubmit(values) may throw to keep the dialog open with the error shown. Resolves with the
// onSubmit result, or null when dismissed.
export function formDialog({ title, description, fields = [], submitLabel = "Save", danger = false, onSubmit }) {
  return new Promise((resolve) => {
    const id = `dlg-${++dialogSeq}`;
    const errorBox = h("p", { class: "form-error", role: "alert", hidden: true });
    const inputs = {};
    const rows = fields.map((f) => {
      const fid = `${id}-${f.name}`;
      const helpId = f.help ? `${fid}-help` : null;
      const common = { id: fid, name: f.name, placeholder: f.placeholder || null, required: f.required || null, "aria-describedby": helpId };
      let input;
      if (f.type === "textarea" || f.type === "json") {
        input = h("textarea", { ...common, rows: f.rows || 4, spellcheck: "false", class: f.type === "json" ? "mono" : null });
        input.value = f.value ?? "";
      } else if (f.type === "select") {
        input = h("select", common, (f.options || []).map(([v, l]) => h("option", { value: v, selected: String(v) === String(f.value ?? "") }, l)));
      } else {
        input = h("input", { ...common, type: f.type || "text", value: f.value ?? "", autocomplete: f.autocomplete || "off", list: f.list || null });
      }
      inputs[f.name] = input;
      return h(
        "div",
        { class: "field" },
        h("label", { for: fid }, f.label, f.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
        input,
        f.help ? h("p", { class: "help", id: helpId }, f.help) : null,
      );
    });
    const submit = h("button", { type: "submit", class: danger ? "btn btn-danger" : "btn btn-primary" }, submitLabel);
    const cancel = h("button", { type: "button", class: "btn", onclick: () => dlg.close() }, "Cancel");
    const form = h(
      "form",
      { method: "dialog", class: "dialog-form", novalidate: true },
      h("h2", { class: "dialog-title", id: `${id}-title` }, title),
      description ? h("p", { class: "dialog-desc" }, description) : null,
      rows,
      errorBox,
      h("div", { class: "dialog-actions" }, cancel, submit),
    );
    const dlg = h("dialog", { class: "dialog", "aria-labelledby": `${id}-title` }, form);
    let result = null;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      errorBox.hidden = true;
      const values = {};
      try {
        for (const f of fields) {
          const raw = inputs[f.name].value;
          if (f.required && !String(raw).trim()) {
            inputs[f.name].focus();
            throw new Error(`${f.label} is required`);
          }
          values[f.name] = f.type === "json" ? parseJsonField(raw, { object: f.object, what: f.label }) : raw;
          inputs[f.name].removeAttribute("aria-invalid");
        }
      } catch (e) {
        const bad = fields.find((f) => e.message.startsWith(f.label));
        if (bad) inputs[bad.name].setAttribute("aria-invalid", "true");
        errorBox.textContent = e.message;
        errorBox.hidden = false;
        return;
      }
      submit.disabled = true;
      try {
        result = onSubmit ? await onSubmit(values) : values;
        if (result === undefined) result = values;
        dlg.close();
      } catch (e) {
        errorBox.textContent = e.message || String(e);
        errorBox.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = Object.values(inputs)[0];
    (first || submit).focus();
  });
}

export async function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false, reason = false }) {
  const fields = reason ? [{ name: "reason", label: "Reason (optional)", placeholder: "why?" }] : [];
  const out = await formDialog({ title, description: message, fields, submitLabel: confirmLabel, danger, onSubmit: (v) => v });
  return out;
}

export function copyButton(text, label = "Copy") {
  return h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-xs",
      "aria-label": `${label} to clipboard`,
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          toast("Copied", "info", { timeout: 1500 });
        } catch {
          toast("Clipboard not available", "error");
        }
      },
    },
    label,
  );
}

// Trailing debounce; with maxWait, calls that keep coming still run fn at least every maxWait ms.
export function debounce(fn, ms, maxWait = null) {
  let t = null;
  let first = null;
  const wrapped = (...args) => {
    clearTimeout(t);
    const now = Date.now();
    if (first === null) first = now;
    const wait = maxWait === null ? ms : Math.max(0, Math.min(ms, first + maxWait - now));
    t = setTimeout(() => {
      first = null;
      fn(...args);
    }, wait);
  };
  wrapped.cancel = () => {
    clearTimeout(t);
    first = null;
  };
  return wrapped;
}

export function pageHeader(title, subtitle, ...actions) {
  return h(
    "div",
    { class: "page-header" },
    h("div", { class: "page-title" }, h("h1", {}, title), subtitle ? h("p", { class: "muted page-sub" }, subtitle) : null),
    h("div", { class: "page-actions" }, actions),
  );
}

export function table(columns, { caption, className } = {}) {
  const tbody = h("tbody");
  const tbl = h(
    "table",
    { class: `table ${className || ""}` },
    caption ? h("caption", { class: "sr-only" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class || null }, c.label)))),
    tbody,
  );
  return { wrap: h("div", { class: "table-wrap" }, tbl), table: tbl, tbody };
}

// Keyed reconciliation of table rows: create(item) -> <tr>, update(tr, item) patches in place.
// New rows get a short highlight unless animate is false (e.g. the first render of a view).
/** The load function of a polled table card. The first load shows the table (or the error); a failed later
 *  load keeps the rows on screen. Rows are reconciled in place; `after(rows)` runs after each update. */
export function liveRows({ ctx, card, wrap, empty, tbody, fetch, key, create, update, after }) {
  let loaded = false;
  return async function load() {
    let rows;
    try {
      rows = await fetch();
    } catch (e) {
      if (!loaded) clear(card).append(errorState(e));
      return;
    }
    if (!ctx.isCurrent()) return;
    const animate = loaded;
    if (!loaded) {
      loaded = true;
      clear(card).append(wrap, empty);
    }
    reconcileRows(tbody, rows, key, create, update, { animate });
    empty.hidden = rows.length > 0;
    wrap.hidden = rows.length === 0;
    if (after) after(rows);
  };
}

export function reconcileRows(tbody, items, key, create, update, { animate = true } = {}) {
  const existing = new Map();
  for (const tr of tbody.querySelectorAll(":scope > tr[data-key]")) existing.set(tr.dataset.key, tr);
  for (const tr of tbody.querySelectorAll(":scope > tr:not([data-key])")) tr.remove();
  let prev = null;
  for (const item of items) {
    const k = String(key(item));
    let tr = existing.get(k);
    if (tr) {
      existing.delete(k);
      const replacement = update(tr, item);
      if (replacement instanceof Node && replacement !== tr) {
        replacement.dataset.key = k;
        tr.replaceWith(replacement);
        tr = replacement;
      }
    } else {
      tr = create(item);
      tr.dataset.key = k;
      if (animate) tr.classList.add("row-new");
    }
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of existing.values()) tr.remove();
}
