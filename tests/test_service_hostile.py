"""The service under hostile input (issue 14, items 6, 7 and 12's header limit): ids with '/' are addressable by
every route, text that cannot be encoded is a 422 naming the field, oversized headers are refused."""

from __future__ import annotations

import httpx
import pytest

from .service_helpers import AUTH, free_port, serve, service_root, wait_ready

pytestmark = pytest.mark.slow
SURROGATE_BODIES = [
    ("/v1/more-like-this", '{"text": "peace \\ud800 talks"}', "body.text"),
    ("/v1/more-like-this", '{"ids": ["\\ud800"]}', "body.ids.0"),
    ("/v1/more-like-this", '{"ids": ["demo-001"], "negative_ids": ["\\udfff"]}', "body.negative_ids.0"),
    ("/v1/articles", '{"articles": [{"id": "x", "title": "A headline", "body": "\\ud800"}]}', "body.articles.0.body"),
    ("/v1/events", '{"events": [{"article_id": "\\ud800"}]}', "body.events.0.article_id"),
]


@pytest.mark.parametrize("path, body, field", SURROGATE_BODIES)
def test_text_that_cannot_be_encoded_is_a_422_naming_the_field(client, path, body, field):
    """Lone surrogates in more-like-this text and ids, an upsert body or an event id: 422 naming the field (they
    were 500s, from the tokenizer and the JSON encoder)."""
    response = client.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]


def test_ids_with_slashes_are_addressable_and_headers_bounded(demo_root, tmp_path):
    """An article whose id holds '/' (a CMS path id) is upserted, listed, looked up, taken down and restored
    through a real uvicorn, with the '/' sent as %2F as the widget encodes it (DELETE once answered 404 'no
    route')."""
    root = service_root(demo_root, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = serve(root, port, 1, RECOMMENDER_WARM_MODEL="true")
    article = {"id": "world/2026/dec/01/talks-resume", "title": "Tarsova and Velmont talks resume in Geneva",
               "body": "Envoys of Tarsova and Velmont met again in Geneva on Monday to resume ceasefire talks.",
               "section": "world"}
    encoded = "world%2F2026%2Fdec%2F01%2Ftalks-resume"
    try:
        wait_ready(base, process, tmp_path / "server.log")
        with httpx.Client(base_url=base, timeout=60) as http:
            assert http.post("/v1/articles", json={"articles": [article]}, headers=AUTH).status_code == 200
            for path in (f"/v1/articles/{encoded}/related", f"/v1/articles/{article['id']}/related",
                         f"/v1/articles/{encoded}/story"):
                assert http.get(path, params={"k": 3}).status_code == 200, path
            listed = http.post("/v1/more-like-this", json={"ids": ["demo-001"], "k": 30}).json()["items"]
            assert article["id"] in [i["article_id"] for i in listed]
            assert http.delete(f"/v1/articles/{encoded}", headers=AUTH).status_code == 200
            assert http.get(f"/v1/articles/{encoded}/related").status_code == 404
            assert http.delete(f"/v1/takedowns/{encoded}", headers=AUTH).status_code == 200
            assert http.get(f"/v1/articles/{encoded}/related").status_code == 200
            # Headers: 4 MB of them are refused (they were accepted); an ordinary request still answers.
            huge = http.get("/v1/popular", headers={"X-Junk": "x" * 4_000_000})
            assert huge.status_code == 431 and huge.json()["error"]["code"] == "headers_too_large"
            assert http.get("/v1/popular").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
