"""Dashboard branding from the eleven ASSAY_WHITELABEL_* environment variables.

The variables, their defaults and their empty-value rule are declared in assay/config.py
(DashboardSettings); as documented in docs/dashboard.md:

* NAME, PAGE_TITLE, PARENT_NAME take the empty string literally.
* SUBTITLE: unset or empty means no subtitle.
* API_DOCS_URL: unset keeps the default link, empty hides the link.
* LOGO_URL, PARENT_URL, CSS_URL, FAVICON_URL, MARK, DEFAULT_NAMESPACE treat empty like unset
  (MARK then defaults to the first letter of the name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from assay.config import DashboardSettings, declared, load_scope

DECLARED = declared(DashboardSettings)
PREFIX = "ASSAY_WHITELABEL_"
VARIABLES = tuple((s.env or "").removeprefix(PREFIX) for s in DECLARED.values())
DEFAULT_NAME: str = DECLARED["name"].default
DEFAULT_PAGE_TITLE: str = DECLARED["page_title"].default
DEFAULT_PARENT_NAME: str = DECLARED["parent_name"].default
DEFAULT_API_DOCS_URL: str = DECLARED["api_docs_url"].default
DEFAULT_NAMESPACE: str = DECLARED["default_namespace"].default
BUILTIN_FAVICON = "/workflow/favicon.svg"

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}


def escape(value: str) -> str:
    """HTML-escape for text and double-quoted attribute values."""
    return "".join(_ESCAPES.get(c, c) for c in value)


@dataclass(frozen=True)
class Whitelabel(DashboardSettings):
    """The declared settings plus how they render; `mark` is filled in from the name when unset."""

    @property
    def customised(self) -> bool:
        """A rebranded deployment credits assay with "Powered by" in the footer."""
        return bool(
            self.name != DEFAULT_NAME or self.subtitle or self.logo_url or self.css_url or self.favicon_url
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Whitelabel:
        wl = load_scope(cls, environ=environ)
        if not wl.mark:
            wl = dataclasses.replace(wl, mark=wl.name[:1].upper() or "A")
        return wl

    def fragments(self, asset_version: str) -> dict[str, str]:
        """The HTML snippets substituted into the index template (every value escaped)."""
        e = escape
        if self.favicon_url:
            favicon = f'<link rel="icon" href="{e(self.favicon_url)}">'
        else:
            favicon = f'<link rel="icon" type="image/svg+xml" href="{BUILTIN_FAVICON}?v={e(asset_version)}">'
        extra_css = ""
        if self.css_url:
            sep = "&" if "?" in self.css_url else "?"
            href = f"{self.css_url}{sep}v={asset_version}"
            extra_css = f'<link rel="stylesheet" href="{e(href)}" data-whitelabel-css>'
        logo = (
            f'<img class="logo-img" src="{e(self.logo_url)}" alt="{e(self.name)}">' if self.logo_url else ""
        )
        subtitle = f'<span class="logo-subtitle">{e(self.subtitle)}</span>' if self.subtitle else ""
        docs = ""
        if self.api_docs_url:
            docs = (
                f'<a class="nav-link nav-link-docs" href="{e(self.api_docs_url)}" target="_blank" '
                f'rel="noopener noreferrer"><span class="nav-icon" aria-hidden="true">{{}}</span>'
                f'<span class="nav-label">API Docs</span></a>'
            )
        parent = ""
        if self.parent_url:
            parent = (
                f'<a class="nav-link nav-link-back" href="{e(self.parent_url)}" title="{e(self.parent_name)}">'
                f'<span class="nav-icon" aria-hidden="true">&larr;</span>'
                f'<span class="nav-label">{e(self.parent_name)}</span></a>'
            )
        if self.customised:
            footer = (
                'Powered by <a class="assay-attribution" href="https://assay.rs" target="_blank" '
                'rel="noopener noreferrer">Assay</a>'
            )
        else:
            footer = '<span class="footer-product">Assay Workflow Engine</span>'
        return {
            "PAGE_TITLE": e(self.page_title),
            "FAVICON": favicon,
            "EXTRA_CSS": extra_css,
            "LOGO": logo,
            "MARK": e(self.mark),
            "NAME": e(self.name),
            "SUBTITLE": subtitle,
            "API_DOCS_LINK": docs,
            "API_DOCS_URL": e(self.api_docs_url),
            "PARENT_LINK": parent,
            "FOOTER": footer,
            "DEFAULT_NAMESPACE": e(self.default_namespace),
            "V": e(asset_version),
        }
