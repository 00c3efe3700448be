"""The settings tables of the docs, generated from assay.config's declarations (README, docs/cli.md,
docs/dashboard.md); freshness tests keep the docs equal to these."""

from __future__ import annotations

from assay.config import CLIENT, DASHBOARD, SCOPE_TITLES, SCOPES, SETTINGS, Setting


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default_md(s: Setting) -> str:
    """Literal defaults as code; prose ("discovered", "table on a terminal, ...") as text."""
    if s.shown_default is not None:
        text = s.shown_default
        return _cell(f"`{text}`" if "/" in text or "$" in text else text)
    if s.default is None:
        return "unset"
    if s.default == "":
        return "empty"
    return _cell(f"`{s.default_text()}`")


def settings_markdown() -> str:
    """The README's settings table (every component), generated from SETTINGS; a test keeps it fresh."""
    out = []
    for scope in SCOPES:
        rows = [s for s in SETTINGS if s.scope == scope and s.env]
        out += [
            f"**{SCOPE_TITLES[scope]}**",
            "",
            "| Environment variable | Type | Default | Meaning |",
            "|---|---|---|---|",
        ]
        for s in rows:
            also = f" Also read by the {', '.join(SCOPE_TITLES[a] for a in s.also)}." if s.also else ""
            out.append(f"| `{s.env}` | {s.type_text()} | {_default_md(s)} | {_cell(s.help + also)} |")
        out.append("")
    return "\n".join(out).rstrip()


def client_options_markdown() -> str:
    """docs/cli.md's global-options table (flag, environment, config key, default)."""
    rows = ["| Flag | Environment | Config key | Default | Meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        if s.scope != CLIENT:
            continue
        flag = f"`{s.flag}`" if s.flag else ""
        key = f"`{s.name}`" if s.config_key else ""
        rows.append(f"| {flag} | `{s.env}` | {key} | {_default_md(s)} | {_cell(s.help)} |")
    return "\n".join(rows)


def dashboard_markdown() -> str:
    """docs/dashboard.md's whitelabel table: unset, set to "", set to a value."""
    rows = ['| Variable | Unset | Set to `""` | Set to a value |', "|---|---|---|---|"]
    for s in SETTINGS:
        if s.scope != DASHBOARD:
            continue
        unset = s.shown_default if s.shown_default is not None else f"`{s.default}`"
        empty = s.empty_doc or ("taken literally" if s.empty_is_value else unset)
        rows.append(f"| `{s.env}` | {_cell(unset)} | {_cell(empty)} | {_cell(s.help)} |")
    return "\n".join(rows)
