"""GET /workflows pages by keyset cursor: X-Next-Cursor on a full page, `cursor` to continue; offset works."""

from __future__ import annotations

from tests.engine.support import start


def ids(resp) -> list[str]:
    assert resp.status == 200, resp.text
    return [w["workflow_id"] if "workflow_id" in w else w["id"] for w in resp.json]


def test_cursor_walks_every_page_once_while_new_workflows_start(client, engine, clock):
    for i in range(23):
        start(engine, f"p{i:02d}", search_attributes={"k": "v" if i % 2 else "w"})
        if i % 3 == 0:
            clock.advance(1)  # several workflows share a created_at: ties go by id
    want = ids(client.get("/workflows", query={"limit": 1000}))
    assert len(want) == 23
    got, cursor, n = [], None, 0
    while True:
        q = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        r = client.get("/workflows", query=q)
        got += ids(r)
        cursor = r.headers.get("X-Next-Cursor")
        start(engine, f"late{n}")  # a newer workflow starts between pages
        n += 1
        if cursor is None:
            break
    assert got == want
    assert len(ids(client.get("/workflows", query={"limit": 5}))) == 5


def test_cursor_with_filters_and_last_page_has_no_cursor(client, engine):
    for i in range(7):
        start(engine, f"f{i}", search_attributes={"k": "v" if i % 2 else "w"})
    r = client.get("/workflows", query={"limit": 2, "search_attrs": '{"k": "v"}'})
    first = ids(r)
    r2 = client.get(
        "/workflows", query={"limit": 2, "search_attrs": '{"k": "v"}', "cursor": r.headers["X-Next-Cursor"]}
    )
    assert len(first) == 2 and len(ids(r2)) == 1 and not set(first) & set(ids(r2))
    assert "X-Next-Cursor" not in r2.headers
    assert ids(client.get("/workflows", query={"limit": 3, "offset": 5})) == ["f1", "f0"]


def test_bad_cursor_is_a_clear_400(client):
    for bad in ("nope", "bm9wZQ", "WzEsMl0", "!!!"):
        r = client.get("/workflows", query={"cursor": bad})
        assert r.status == 400 and "cursor" in r.json["error"], (bad, r.text)
    r = client.get("/workflows", query={"cursor": "WzEuMCwiYSJd", "offset": 3})
    assert r.status == 400 and "offset" in r.json["error"]
