// Settings: engine version and build profile, namespaces (create / delete, with stats), API docs
// link, appearance, the operator name sent with step actions, and the sign-in session.

import { api, enc, getToken } from "./api.js";
import { DEFAULT_NAMESPACE } from "./protocol.js";
import { confirmDialog, emptyState, errorState, h, pageHeader, table, timeEl, toast } from "./ui.js";

export async function render(root, ctx) {
  root.append(pageHeader("Settings", "Engine, namespaces and this browser's preferences"));
  const grid = h("div", { class: "settings-grid" });
  root.append(grid);

  // ---- engine
  const engineDl = h("dl", { class: "meta-grid" });
  grid.append(h("section", { class: "card", "aria-labelledby": "s-engine" }, h("h2", { id: "s-engine" }, "Engine"), engineDl));
  async function loadEngine() {
    let v = ctx.version();
    try {
      v = await api("/version");
    } catch (e) {
      if (!v) {
        engineDl.replaceChildren(errorState(e));
        return;
      }
    }
    const rows = [
      ["Version", h("span", { class: "mono", id: "settings-version" }, v.version)],
      ["Build profile", h("span", { class: "mono", id: "settings-profile" }, v.build_profile)],
      ["Dashboard assets", h("span", { class: "mono" }, document.body.dataset.assetVersion || "—")],
      ["API docs", ctx.apiDocsUrl ? h("a", { href: ctx.apiDocsUrl, target: "_blank", rel: "noopener noreferrer", id: "settings-docs" }, ctx.apiDocsUrl) : h("span", { class: "muted" }, "hidden by configuration")],
      ["OpenAPI", h("a", { href: "/api/v1/engine/workflow/openapi.json", target: "_blank", rel: "noopener noreferrer" }, "openapi.json")],
    ];
    engineDl.replaceChildren(...rows.flatMap(([k, val]) => [h("dt", {}, k), h("dd", {}, val)]));
  }

  // ---- namespaces
  const nsInput = h("input", { id: "ns-new", name: "name", required: true, placeholder: "e.g. staging", autocomplete: "off", pattern: "[A-Za-z0-9_.\\-]+", title: "letters, digits, '.', '_' or '-'" });
  const nsForm = h(
    "form",
    { class: "inline-form", "aria-label": "Create namespace" },
    h("div", { class: "field field-inline field-grow" }, h("label", { for: "ns-new" }, "New namespace"), nsInput),
    h("button", { type: "submit", class: "btn btn-primary" }, "Create"),
  );
  const { wrap, tbody } = table([{ label: "Name" }, { label: "Workflows", class: "num" }, { label: "Running", class: "num" }, { label: "Schedules", class: "num hide-sm" }, { label: "Workers", class: "num hide-sm" }, { label: "Created", class: "hide-sm" }, { label: "Actions", class: "col-actions" }], { caption: "Namespaces", className: "ns-table" });
  grid.append(h("section", { class: "card card-wide", "aria-labelledby": "s-ns" }, h("h2", { id: "s-ns" }, "Namespaces"), nsForm, wrap));
  nsForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = nsInput.value.trim();
    if (!name || !nsInput.checkValidity()) {
      nsInput.setAttribute("aria-invalid", "true");
      toast("Namespace names use letters, digits, '.', '_' or '-'", "error");
      return;
    }
    nsInput.removeAttribute("aria-invalid");
    try {
      await api("/namespaces", { method: "POST", body: { name } });
      toast(`Created namespace ${name}`);
      nsInput.value = "";
      await loadNamespaces();
      ctx.loadNamespaces();
    } catch (e) {
      toast(`Could not create namespace: ${e.message}`, "error");
    }
  });

  async function loadNamespaces() {
    let list;
    try {
      list = await api("/namespaces");
    } catch (e) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: "7" }, errorState(e))));
      return;
    }
    const stats = await Promise.all(list.map((n) => api(`/namespaces/${enc(n.name)}`).catch(() => null)));
    if (!ctx.isCurrent()) return;
    tbody.replaceChildren(
      ...list.map((n, i) => {
        const s = stats[i] || {};
        return h(
          "tr",
          { "data-ns": n.name },
          h("td", {}, h("a", { href: ctx.href("", {}, n.name) }, h("strong", {}, n.name)), n.name === ctx.ns ? h("span", { class: "tag" }, "current") : null),
          h("td", { class: "num" }, String(s.total_workflows ?? "—")),
          h("td", { class: "num" }, String(s.running ?? "—")),
          h("td", { class: "num hide-sm" }, String(s.schedules ?? "—")),
          h("td", { class: "num hide-sm" }, String(s.workers ?? "—")),
          h("td", { class: "hide-sm" }, timeEl(n.created_at)),
          h(
            "td",
            { class: "col-actions" },
            n.name === DEFAULT_NAMESPACE
              ? h("span", { class: "muted small" }, "built-in")
              : h("button", { type: "button", class: "btn btn-xs btn-danger-ghost", "aria-label": `Delete namespace ${n.name}`, onclick: () => removeNs(n.name) }, "Delete"),
          ),
        );
      }),
    );
    if (!list.length) tbody.replaceChildren(h("tr", {}, h("td", { colspan: "7" }, emptyState("No namespaces"))));
  }

  async function removeNs(name) {
    const ok = await confirmDialog({ title: `Delete namespace ${name}?`, message: "The namespace is removed from the list. Its workflows, schedules and workers are not deleted.", confirmLabel: "Delete namespace", danger: true });
    if (!ok) return;
    try {
      await api(`/namespaces/${enc(name)}`, { method: "DELETE" });
      toast(`Deleted namespace ${name}`);
      await loadNamespaces();
      ctx.loadNamespaces();
    } catch (e) {
      toast(`Could not delete namespace: ${e.message}`, "error");
    }
  }

  // ---- preferences
  const themeSel = h("select", { id: "pref-theme" }, [["light", "Light"], ["dark", "Dark"]].map(([v, l]) => h("option", { value: v, selected: ctx.theme.get() === v }, l)));
  themeSel.addEventListener("change", () => ctx.theme.set(themeSel.value));
  let user = "";
  try {
    user = localStorage.getItem("assay.user") || "";
  } catch {
    user = "";
  }
  const userIn = h("input", { id: "pref-user", value: user, placeholder: "e.g. alice", autocomplete: "username" });
  const prefForm = h(
    "form",
    { class: "stack" },
    h("div", { class: "field" }, h("label", { for: "pref-theme" }, "Theme"), themeSel),
    h("div", { class: "field" }, h("label", { for: "pref-user" }, "Your name (sent with step actions)"), userIn, h("p", { class: "help" }, "Stored in this browser (localStorage) as the user of Steps-tab approve/reject signals.")),
    h("div", {}, h("button", { type: "submit", class: "btn" }, "Save preferences")),
  );
  prefForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    try {
      const v = userIn.value.trim();
      if (v) localStorage.setItem("assay.user", v);
      else localStorage.removeItem("assay.user");
      toast("Preferences saved");
    } catch {
      toast("This browser does not allow local storage", "error");
    }
  });
  grid.append(h("section", { class: "card", "aria-labelledby": "s-prefs" }, h("h2", { id: "s-prefs" }, "Preferences"), prefForm));

  // ---- session
  const session = h("section", { class: "card", "aria-labelledby": "s-session" }, h("h2", { id: "s-session" }, "Session"));
  session.append(
    getToken()
      ? h("p", {}, "Signed in with a token kept in this tab. Use ", h("strong", {}, "Sign out"), " in the sidebar to forget it.")
      : h("p", { class: "muted" }, "No token stored. If the engine requires authentication you will be asked to sign in."),
    h("button", { type: "button", class: "btn", onclick: () => ctx.signIn() }, getToken() ? "Use a different token" : "Sign in"),
  );
  grid.append(session);

  await Promise.all([loadEngine(), loadNamespaces()]);
  return null;
}
