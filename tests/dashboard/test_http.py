"""Dashboard over in-process WSGI: routes, redirects, headers, content types, assets, whitelabel."""

from __future__ import annotations

import posixpath
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from assay.api import make_app
from assay.auth import AuthConfig, Authenticator
from assay.dashboard import register
from assay.dashboard.whitelabel import Whitelabel, escape
from tests.wsgi import Client

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "assay" / "dashboard" / "static"
VIEW_PATHS = [
    "/workflow/",
    "/workflow/workflows",
    "/workflow/schedules",
    "/workflow/workers",
    "/workflow/queues",
    "/workflow/settings",
]
TOKENS = [
    "--bg",
    "--surface",
    "--surface-hover",
    "--border",
    "--text",
    "--text-muted",
    "--accent",
    "--accent-hover",
    "--green",
    "--red",
    "--yellow",
    "--orange",
    "--shadow",
    "--code-bg",
]


def make_client(engine, environ=None, version="1700000000", auth=None):
    app = make_app(
        engine,
        auth=auth,
        extra=[
            lambda app, router: register(
                app, engine, engine.settings, environ=environ or {}, asset_version=version
            )
        ],
    )
    return Client(app, prefix="")


@pytest.fixture
def dash(engine):
    return make_client(engine)


def page(engine, **env):
    environ = {f"ASSAY_WHITELABEL_{k}": v for k, v in env.items()}
    r = make_client(engine, environ).get("/workflow/")
    assert r.status == 200
    return r.text


# ---- routes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/workflow"])
def test_root_and_bare_path_redirect_308(dash, path):
    r = dash.get(path)
    assert r.status == 308
    assert r.headers["Location"] == "/workflow/"
    assert "no-cache" in r.headers["Cache-Control"]


def test_redirect_keeps_the_query_string(dash):
    r = dash.get("/workflow", query={"ns": "ops"})
    assert r.status == 308
    assert r.headers["Location"] == "/workflow/?ns=ops"


@pytest.mark.parametrize(
    "path", [*VIEW_PATHS, "/workflow/schedules/", "/workflow/workflows/order-1", "/workflow/workflows/a/b"]
)
def test_views_serve_the_index(dash, path):
    r = dash.get(path)
    assert r.status == 200, path
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "<!doctype html>" in r.text
    assert 'id="main"' in r.text


def test_head_request_for_index(dash):
    r = dash.request("HEAD", "/workflow/")
    assert r.status == 200
    assert r.raw == b""


def test_unknown_dashboard_paths_are_404(dash):
    for path in [
        "/workflow/nope.js",
        "/workflow/index.html",
        "/workflow/components/missing.js",
        "/workflow/components/../../__init__.py",
        "/workflow/style.exe",
    ]:
        r = dash.get(path)
        assert r.status == 404, path
        assert "<html" not in r.text


def test_api_routes_unaffected(dash):
    r = dash.get("/api/v1/engine/workflow/health")
    assert r.status == 200 and r.json["status"] == "ok"
    r = dash.get("/api/v1/engine/workflow/nothing-here")
    assert r.status == 404 and "error" in r.json


def test_dashboard_is_public_even_when_the_api_is_guarded(engine):
    c = make_client(engine, auth=Authenticator(engine.store, AuthConfig(api_keys=True)))
    assert c.get("/api/v1/engine/workflow/workflows").status == 401
    assert c.get("/workflow/").status == 200
    assert c.get("/workflow/app.js").status == 200
    assert c.get("/favicon.ico").status == 200


# ---- assets -----------------------------------------------------------------------------------
def referenced_assets(html: str) -> list[str]:
    """Scripts, stylesheets and icons (not navigation links)."""
    return re.findall(r'(?:<script[^>]* src|<link[^>]* href)="(/workflow/[^"]+)"', html)


def test_index_assets_carry_the_version_and_exist(dash):
    html = dash.get("/workflow/").text
    refs = referenced_assets(html)
    assert any(r.startswith("/workflow/app.js?v=1700000000") for r in refs)
    assert any(r.startswith("/workflow/style.css?v=1700000000") for r in refs)
    assert len(refs) >= 4
    for ref in refs:
        assert "?v=1700000000" in ref, ref
        path = ref.split("?", 1)[0]
        r = dash.get(path)
        assert r.status == 200, ref
        assert r.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path, ctype",
    [
        ("/workflow/app.js", "application/javascript; charset=utf-8"),
        ("/workflow/components/steps.js", "application/javascript; charset=utf-8"),
        ("/workflow/style.css", "text/css; charset=utf-8"),
        ("/workflow/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ],
)
def test_asset_content_types(dash, path, ctype):
    r = dash.get(path)
    assert r.status == 200
    assert r.headers["Content-Type"] == ctype
    assert r.headers["Cache-Control"] == "no-cache"
    assert int(r.headers["Content-Length"]) == len(r.raw) > 0


def test_favicon_is_the_builtin_svg(dash):
    assert dash.get("/favicon.ico").raw == (STATIC / "favicon.svg").read_bytes()


def test_every_module_import_is_versioned_and_resolves(dash):
    js_files = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.js"))
    assert "app.js" in js_files and "components/steps.js" in js_files
    for name in js_files:
        body = dash.get(f"/workflow/{name}").text
        for spec in re.findall(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""", body):
            assert spec.endswith(".js?v=1700000000"), (name, spec)
            target = posixpath.normpath(
                posixpath.join("/workflow", posixpath.dirname(name), spec.split("?")[0])
            )
            assert dash.get(target).status == 200, (name, spec)


def test_etag_revalidation_answers_304(dash):
    r = dash.get("/workflow/style.css")
    etag = r.headers["ETag"]
    r2 = dash.get("/workflow/style.css", headers={"If-None-Match": etag})
    assert r2.status == 304 and r2.raw == b""
    r3 = dash.get("/workflow/", headers={"If-None-Match": '"other"'})
    assert r3.status == 200


def test_default_asset_version_is_the_process_start_second(engine):
    app = make_app(engine)
    dash = register(app, engine, engine.settings, environ={})
    assert re.fullmatch(r"\d{10,}", dash.asset_version)
    html = Client(app, prefix="").get("/workflow/").text
    assert f"/workflow/app.js?v={dash.asset_version}" in html


def test_css_declares_every_theme_token_on_root():
    css = (STATIC / "style.css").read_text()
    root_block = re.search(r"^:root \{(.*?)^\}", css, re.S | re.M).group(1)
    dark_block = re.search(r'^:root:where\(\[data-theme="dark"\]\) \{(.*?)^\}', css, re.S | re.M).group(1)
    for token in TOKENS:
        assert re.search(rf"^\s*{re.escape(token)}:", root_block, re.M), token
        assert re.search(rf"^\s*{re.escape(token)}:", dark_block, re.M), token


def test_no_external_urls_in_assets():
    """Works offline: no CDN, no remote fonts or scripts."""
    for p in STATIC.rglob("*"):
        if p.suffix in (".js", ".css", ".html"):
            text = p.read_text()
            assert not re.search(r"""(src|href|url\(|import)[^\n]{0,20}https?://""", text), p


def test_dashboard_works_from_a_zipapp(tmp_path):
    """Assets are read through importlib.resources, so a zipped package serves them too."""
    zpath = tmp_path / "assay.pyz"
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(ROOT / "assay" / "__init__.py", "assay/__init__.py")
        for p in (ROOT / "assay" / "dashboard").rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                z.write(p, p.relative_to(ROOT).as_posix())
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bottle, assay.dashboard as d;"
        "assert d.__file__.startswith(sys.argv[1]), d.__file__;"
        "x = d.Dashboard(d.Whitelabel.from_env({}), '42');"
        "html = x.index()[0].decode(); assert 'app.js?v=42' in html;"
        "js = x._load('app.js')[0].decode(); assert './components/api.js?v=42' in js;"
        "print(len(x.asset_names()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(zpath)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 10


# ---- whitelabel -------------------------------------------------------------------------------
def test_escape_matches_the_five_characters():
    assert escape("""a&b<c>d"e'f""") == "a&amp;b&lt;c&gt;d&quot;e&#39;f"


def test_defaults_when_nothing_is_set(engine):
    html = page(engine)
    assert "<title>Assay Workflow Dashboard</title>" in html
    assert '<span class="logo-full">Assay</span>' in html
    assert '<span class="logo-mark" aria-hidden="true">A</span>' in html
    assert "logo-subtitle" not in html
    assert "logo-img" not in html
    assert "nav-link-back" not in html
    assert 'href="/api/v1/engine/workflow/docs"' in html
    assert "data-whitelabel-css" not in html
    assert '<link rel="icon" type="image/svg+xml" href="/workflow/favicon.svg?v=1700000000">' in html
    assert 'data-default-namespace="main"' in html
    assert "Assay Workflow Engine" in html and "Powered by" not in html
    assert 'id="status-version"' in html


def test_name(engine):
    assert '<span class="logo-full">Acme</span>' in page(engine, NAME="Acme")
    html = page(engine, NAME="")
    assert '<span class="logo-full"></span>' in html
    assert '<span class="logo-mark" aria-hidden="true">A</span>' in html  # empty name -> "A"
    html = page(engine, NAME='<b>"Bob\'s" & co</b>')
    assert "<b>" not in html
    assert '<span class="logo-full">&lt;b&gt;&quot;Bob&#39;s&quot; &amp; co&lt;/b&gt;</span>' in html


def test_mark(engine):
    assert '<span class="logo-mark" aria-hidden="true">Z</span>' in page(engine, NAME="zeta")
    assert '<span class="logo-mark" aria-hidden="true">Z</span>' in page(engine, NAME="zeta", MARK="")
    assert '<span class="logo-mark" aria-hidden="true">🚀</span>' in page(engine, MARK="🚀")
    assert '<span class="logo-mark" aria-hidden="true">&lt;</span>' in page(engine, MARK="<")


def test_subtitle(engine):
    assert "logo-subtitle" not in page(engine)  # unset: no subtitle (the documented behaviour)
    assert "logo-subtitle" not in page(engine, SUBTITLE="")
    html = page(engine, SUBTITLE="Ops & <Deploys>")
    assert '<span class="logo-subtitle">Ops &amp; &lt;Deploys&gt;</span>' in html
    assert "Powered by" in html  # a subtitle counts as customised


def test_logo_url(engine):
    assert "logo-img" not in page(engine, LOGO_URL="")
    html = page(engine, LOGO_URL='/static/logo.svg?a=1&b="2"', NAME="Acme")
    assert '<img class="logo-img" src="/static/logo.svg?a=1&amp;b=&quot;2&quot;" alt="Acme">' in html
    assert "Powered by" in html


def test_page_title(engine):
    assert "<title>Acme Flows</title>" in page(engine, PAGE_TITLE="Acme Flows")
    assert "<title></title>" in page(engine, PAGE_TITLE="")
    assert "<title>&lt;/title&gt;&lt;script&gt;</title>" in page(engine, PAGE_TITLE="</title><script>")


def test_parent_url_and_name(engine):
    assert "nav-link-back" not in page(engine, PARENT_URL="")
    assert "nav-link-back" not in page(engine, PARENT_NAME="Console")  # no URL: hidden
    html = page(engine, PARENT_URL="/console")
    assert 'href="/console" title="Back"' in html
    assert '<span class="nav-label">Back</span>' in html
    html = page(engine, PARENT_URL="/console", PARENT_NAME="")
    assert 'href="/console" title=""' in html
    html = page(engine, PARENT_URL='/c?x="1"', PARENT_NAME="Acme <Console>")
    assert 'href="/c?x=&quot;1&quot;" title="Acme &lt;Console&gt;"' in html
    assert '<span class="nav-label">Acme &lt;Console&gt;</span>' in html


def test_api_docs_url(engine):
    assert 'href="/api/v1/engine/workflow/docs"' in page(engine)
    html = page(engine, API_DOCS_URL="")
    assert "nav-link-docs" not in html and "API Docs" not in html
    assert 'data-api-docs-url=""' in html
    html = page(engine, API_DOCS_URL="https://docs.example.com/?a=1&b=2")
    assert 'href="https://docs.example.com/?a=1&amp;b=2" target="_blank"' in html


def test_css_url(engine):
    assert "data-whitelabel-css" not in page(engine, CSS_URL="")
    html = page(engine, CSS_URL="/static/theme.css")
    assert '<link rel="stylesheet" href="/static/theme.css?v=1700000000" data-whitelabel-css>' in html
    html = page(engine, CSS_URL="/static/theme.css?tenant=a")
    assert 'href="/static/theme.css?tenant=a&amp;v=1700000000"' in html
    html = page(engine, CSS_URL='/t.css"><script>')
    assert '"><script>' not in html
    assert 'href="/t.css&quot;&gt;&lt;script&gt;?v=1700000000"' in html
    # loaded last in <head>, after assay's own stylesheet
    head = page(engine, CSS_URL="/static/theme.css").split("</head>")[0]
    assert head.rindex("data-whitelabel-css") > head.index("/workflow/style.css")
    assert head.rstrip().endswith("data-whitelabel-css>")


def test_favicon_url(engine):
    builtin = '<link rel="icon" type="image/svg+xml" href="/workflow/favicon.svg?v=1700000000">'
    assert builtin in page(engine, FAVICON_URL="")
    html = page(engine, FAVICON_URL="/static/fav.png?x=<1>")
    assert '<link rel="icon" href="/static/fav.png?x=&lt;1&gt;">' in html
    assert builtin not in html


def test_default_namespace(engine):
    assert 'data-default-namespace="main"' in page(engine, DEFAULT_NAMESPACE="")
    assert 'data-default-namespace="ops"' in page(engine, DEFAULT_NAMESPACE="ops")
    assert 'data-default-namespace="a&quot;b"' in page(engine, DEFAULT_NAMESPACE='a"b')


@pytest.mark.parametrize(
    "env, customised",
    [
        ({}, False),
        ({"NAME": "Assay"}, False),
        ({"SUBTITLE": ""}, False),
        (
            {"PAGE_TITLE": "x", "PARENT_URL": "/", "API_DOCS_URL": "", "DEFAULT_NAMESPACE": "x", "MARK": "Q"},
            False,
        ),
        ({"NAME": "Acme"}, True),
        ({"NAME": ""}, True),
        ({"SUBTITLE": "x"}, True),
        ({"LOGO_URL": "/l.svg"}, True),
        ({"CSS_URL": "/t.css"}, True),
        ({"FAVICON_URL": "/f.ico"}, True),
    ],
)
def test_footer_attribution(engine, env, customised):
    html = page(engine, **env)
    footer = html.split('class="footer-text">', 1)[1].split("</footer>", 1)[0]
    if customised:
        assert footer.startswith(
            'Powered by <a class="assay-attribution" href="https://assay.rs" target="_blank" rel="noopener noreferrer">Assay</a>'
        )
        assert "Assay Workflow Engine" not in footer
    else:
        assert "Assay Workflow Engine" in footer and "Powered by" not in footer
    assert 'id="status-version"' in footer


def test_whitelabel_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("ASSAY_WHITELABEL_NAME", "FromEnv")
    monkeypatch.delenv("ASSAY_WHITELABEL_API_DOCS_URL", raising=False)
    wl = Whitelabel.from_env()
    assert wl.name == "FromEnv" and wl.mark == "F"
    assert wl.api_docs_url == "/api/v1/engine/workflow/docs"


def test_whitelabel_is_fixed_at_register_time(engine):
    env = {"ASSAY_WHITELABEL_NAME": "First"}
    c = make_client(engine, env)
    env["ASSAY_WHITELABEL_NAME"] = "Second"
    assert '<span class="logo-full">First</span>' in c.get("/workflow/").text
