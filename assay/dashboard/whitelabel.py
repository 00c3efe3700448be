"""Dashboard branding from the eleven ASSAY_WHITELABEL_* environment variables.

Semantics (unset / set to "" / set to a value), as documented in docs/dashboard.md:

* NAME, PAGE_TITLE, PARENT_NAME take the empty string literally.
* SUBTITLE: unset or empty means no subtitle.
* API_DOCS_URL: unset keeps the default link, empty hides the link.
* LOGO_URL, PARENT_URL, CSS_URL, FAVICON_URL, MARK, DEFAULT_NAMESPACE treat empty like unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from assay.protocol import DEFAULT_NAMESPACE

PREFIX = "ASSAY_WHITELABEL_"
DEFAULT_NAME = "Assay"
DEFAULT_PAGE_TITLE = "Assay Workflow Dashboard"
DEFAULT_PARENT_NAME = "Back"
DEFAULT_API_DOCS_URL = "/api/v1/engine/workflow/docs"
BUILTIN_FAVICON = "/workflow/favicon.svg"

VARIABLES = (
    "NAME",
    "MARK",
    "SUBTITLE",
    "LOGO_URL",
    "PAGE_TITLE",
    "PARENT_URL",
    "PARENT_NAME",
    "API_DOCS_URL",
    "CSS_URL",
    "FAVICON_URL",
    "DEFAULT_NAMESPACE",
)

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}


def escape(value: str) -> str:
    """HTML-escape for text and double-quoted attribute values."""
    return "".join(_ESCAPES.get(c, c) for c in value)


@dataclass(frozen=True)
class Whitelabel:
    name: str = DEFAULT_NAME
    mark: str = "A"
    subtitle: str = ""
    logo_url: str = ""
    page_title: str = DEFAULT_PAGE_TITLE
    parent_url: str = ""
    parent_name: str = DEFAULT_PARENT_NAME
    api_docs_url: str = DEFAULT_API_DOCS_URL  # "" = link hidden
    css_url: str = ""
    favicon_url: str = ""
    default_namespace: str = DEFAULT_NAMESPACE

    @property
    def customised(self) -> bool:
        """A rebranded deployment credits assay with "Powered by" in the footer."""
        return bool(
            self.name != DEFAULT_NAME or self.subtitle or self.logo_url or self.css_url or self.favicon_url
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Whitelabel:
        env = os.environ if environ is None else environ

        def raw(key: str) -> str | None:
            return env.get(PREFIX + key)

        def literal(key: str, default: str) -> str:
            v = raw(key)
            return default if v is None else v

        def non_empty(key: str, default: str = "") -> str:
            v = raw(key)
            return default if not v else v

        name = literal("NAME", DEFAULT_NAME)
        return cls(
            name=name,
            mark=non_empty("MARK", name[:1].upper() or "A"),
            subtitle=non_empty("SUBTITLE"),
            logo_url=non_empty("LOGO_URL"),
            page_title=literal("PAGE_TITLE", DEFAULT_PAGE_TITLE),
            parent_url=non_empty("PARENT_URL"),
            parent_name=literal("PARENT_NAME", DEFAULT_PARENT_NAME),
            api_docs_url=literal("API_DOCS_URL", DEFAULT_API_DOCS_URL),
            css_url=non_empty("CSS_URL"),
            favicon_url=non_empty("FAVICON_URL"),
            default_namespace=non_empty("DEFAULT_NAMESPACE", DEFAULT_NAMESPACE),
        )

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
