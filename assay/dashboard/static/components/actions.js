// Operator actions on one workflow (shared by the list rows and the detail view). Every action asks
// for confirmation or input first and reports success or failure with a toast.

import { wf } from "./api.js";
import { confirmDialog, formDialog, h, pretty, TERMINAL, toast } from "./ui.js";

export async function signalWorkflow(id, { name = "" } = {}) {
  return formDialog({
    title: "Send signal",
    description: `Deliver a signal to ${id}. The workflow receives it the next time it waits for that name.`,
    submitLabel: "Send signal",
    fields: [
      { name: "name", label: "Signal name", required: true, value: name, placeholder: "e.g. approve" },
      { name: "payload", label: "Payload (JSON, optional)", type: "json", placeholder: '{"approved": true}' },
    ],
    onSubmit: async (v) => {
      await wf.signal(id, v.name.trim(), v.payload);
      toast(`Signal "${v.name.trim()}" sent to ${id}`);
      return v;
    },
  });
}

export async function cancelWorkflow(id) {
  const ok = await confirmDialog({
    title: "Cancel workflow?",
    message: `Request cancellation of ${id}. A running workflow stops at its next step; pending work is cancelled.`,
    confirmLabel: "Cancel workflow",
    danger: true,
    reason: true,
  });
  if (!ok) return null;
  try {
    await wf.cancel(id, ok.reason?.trim() || undefined);
    toast(`Cancellation requested for ${id}`);
    return ok;
  } catch (e) {
    toast(`Cancel failed: ${e.message}`, "error");
    return null;
  }
}

export async function terminateWorkflow(id) {
  const ok = await confirmDialog({
    title: "Terminate workflow?",
    message: `Stop ${id} immediately. It is marked FAILED and its code does not get to clean up.`,
    confirmLabel: "Terminate",
    danger: true,
    reason: true,
  });
  if (!ok) return null;
  try {
    await wf.terminate(id, ok.reason?.trim() || undefined);
    toast(`Terminated ${id}`);
    return ok;
  } catch (e) {
    toast(`Terminate failed: ${e.message}`, "error");
    return null;
  }
}

export async function continueAsNew(record) {
  return formDialog({
    title: "Continue as new",
    description: `Close ${record.id} and start a fresh run of ${record.workflow_type} with the same queue and search attributes.`,
    submitLabel: "Start new run",
    fields: [
      { name: "workflow_id", label: "New workflow ID (optional)", placeholder: "derived from the current ID" },
      { name: "input", label: "Input (JSON)", type: "json", rows: 6, value: record.input === null || record.input === undefined ? "" : pretty(record.input) },
    ],
    onSubmit: async (v) => {
      const body = {};
      if (v.workflow_id.trim()) body.workflow_id = v.workflow_id.trim();
      if (v.input !== undefined) body.input = v.input;
      const res = await wf.continueAsNew(record.id, body);
      toast(`Continued as ${res.workflow_id}`);
      return res;
    },
  });
}

export async function resetWorkflow(record) {
  return formDialog({
    title: "Reset workflow",
    description: `Start a new run of ${record.id} from a point of its history, with the code deployed now. Signals received after that point are delivered again. ${TERMINAL.has(record.status) ? "" : "This run ends FAILED (terminated) with the reason \"reset to <new id>\"."}`,
    submitLabel: "Reset",
    danger: true,
    fields: [
      { name: "to_event", label: "Reset to event # (optional)", type: "number", placeholder: "empty: the last workflow task", help: "The new run keeps the events up to this seq (see the Events tab)." },
    ],
    onSubmit: async (v) => {
      const seq = String(v.to_event || "").trim();
      if (seq && !/^[1-9][0-9]*$/.test(seq)) throw new Error("Event # must be a positive whole number");
      const res = await wf.reset(record.id, seq ? { to_event: Number(seq) } : { to_last_task: true });
      toast(`Reset ${record.id} to ${res.id}`);
      return res;
    },
  });
}

// Buttons for a list row; onDone() runs after a successful mutation.
export function rowActions(record, onDone) {
  if (TERMINAL.has(record.status)) return h("span", { class: "muted" }, "—");
  const id = record.id;
  const run = (fn) => async (ev) => {
    ev.stopPropagation();
    const r = await fn(id);
    if (r) onDone?.();
  };
  return h(
    "div",
    { class: "row-actions" },
    h("button", { type: "button", class: "btn btn-xs", "aria-label": `Signal ${id}`, onclick: run(signalWorkflow) }, "Signal"),
    h("button", { type: "button", class: "btn btn-xs", "aria-label": `Cancel ${id}`, onclick: run(cancelWorkflow) }, "Cancel"),
    h("button", { type: "button", class: "btn btn-xs btn-danger-ghost", "aria-label": `Terminate ${id}`, onclick: run(terminateWorkflow) }, "Terminate"),
  );
}
