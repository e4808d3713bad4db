"""The widget on a page, in a real browser: Debian's Chromium driven by Playwright against real uvicorn servers.

The demo article page and a host page on another origin (a stdlib static server, as a news site would include
the script) load the widget; a click goes through the public click route into ``popular``; the reader's
history hides read articles; a stopped or hanging API leaves the page intact. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pandas as pd
import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from recommender.catalogue.demo import demo_files
from recommender.service.app import create_app
from recommender.service.clicks import MAX_CLICK_BYTES
from recommender.service.ratelimit import MemoryRateLimiter as RateLimiter
from recommender.service.settings import ServiceSettings
from tests.conftest import DEMO_NOW

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
STATIC = Path(__file__).resolve().parents[1] / "recommender" / "service" / "static"
TOKEN = "widget-test-token"
# Popular is seeded with live views far above the demo corpus's own, so the list does not depend on the clock.
SEEDED = {"demo-006": 50_000, "demo-007": 40_000, "demo-011": 30_000, "demo-037": 20_000, "demo-069": 10_000}
SETTLED = "!document.querySelector('[data-recommender-state=loading]')"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real uvicorn server for one app, in a thread, on a free loopback port."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def settings_for(demo_root: Path, tmp: Path, **overrides) -> ServiceSettings:
    """The demo build (read-only) with private counters and delta; no reload polling; popularity on every event;
    lists kept 5 s (not the default 30 s), so a click reaches popular within the tests' waits."""
    values = dict(index=demo_root / "current", views=f"sqlite:///{tmp / 'views.sqlite'}",
                  delta=str(tmp / "live-delta.sqlite"), takedowns=str(tmp / "takedowns.sqlite"),
                  rules=str(tmp / "rules.sqlite"), experiments=str(tmp / "experiments.sqlite"), write_token=TOKEN,
                  reload_poll_seconds=0, popularity_refresh_seconds=0, list_cache_seconds=5, warm_model=False,
                  click_burst=1_000, demo_pages=True)
    values.update(overrides)
    return ServiceSettings(**values)


@pytest.fixture(scope="module")
def stories() -> dict[str, str]:
    """Ground truth: the story of every demo article."""
    articles, _ = demo_files()
    return {row["id"]: row["story"] for row in map(json.loads, articles.read_text().splitlines())}


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A static web server on another loopback origin (a news site), serving a copy of the widget files."""
    root = tmp_path_factory.mktemp("host-site")
    for name in ("widget.js", "widget.css"):
        shutil.copy(STATIC / name, root / name)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def service(demo_root, embedder, host, tmp_path_factory) -> Iterator[Server]:
    """The service over the demo build, CORS open to the host site, popular seeded with live views."""
    tmp = tmp_path_factory.mktemp("widget-service")
    embedder.encode(["warm up"])  # as the service does at start: the first text query must not wait for the model
    app = create_app(settings_for(demo_root, tmp, cors_origins=[host[0]]), embedder=embedder)
    with Server(app) as server:
        events = [{"article_id": a, "count": n} for a, n in SEEDED.items()]
        reply = httpx.post(f"{server.url}/v1/events", json={"events": events},
                           headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200, reply.text
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium (never a downloaded browser), headless."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test runs scripts/browser.sh)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


class Page:
    """A page in a fresh browser context (own localStorage), recording uncaught errors and console output."""

    def __init__(self, browser, width: int = 1280) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.console: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))

    def open(self, url: str) -> Page:
        """Load a page and wait until every widget container has settled (ready, fallback or empty)."""
        self.page.goto(url)
        self.page.wait_for_function(SETTLED)
        return self

    def ids(self, selector: str) -> list[str]:
        """Article ids listed in one container."""
        return self.page.eval_on_selector_all(f"{selector} a.rec-link", "links => links.map(a => a.dataset.recId)")

    def state(self, selector: str) -> str:
        """A container's ``data-recommender-state``."""
        return self.page.get_attribute(selector, "data-recommender-state")

    def read(self) -> list[str]:
        """The reader's history as the widget keeps it."""
        return json.loads(self.page.evaluate("localStorage.getItem('recommender.read') || '[]'"))

    def close(self) -> None:
        """Close the context."""
        self.context.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    """A fresh page."""
    opened = Page(browser)
    yield opened
    opened.close()


def api_ids(url: str, **params) -> list[str]:
    """Article ids of an API list."""
    reply = httpx.get(url, params=params)
    assert reply.status_code == 200, reply.text
    return [item["article_id"] for item in reply.json()["items"]]


def host_page(host: tuple[str, Path], name: str, api: str, containers: str, timeout_ms: int = 2500) -> str:
    """Write a host-site article page that includes the widget with ``data-api``; returns its URL."""
    (host[1] / name).write_text(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>Host site</title></head><body>
<h1 id="headline">Harbour town council approves new sea wall</h1>
<div id="story"><p>The council voted nine to two on Tuesday.</p><p>Work starts in spring.</p></div>
{containers}
<script src="/widget.js" data-api="{api}" data-timeout-ms="{timeout_ms}" defer></script>
</body></html>""")
    return f"{host[0]}/{name}"


def test_demo_page_panels_show_the_expected_stories(service, page, stories):
    """demo-001's page: its text, Related = its tarsova-ceasefire story, More like this = more of the story
    without repeating Related, Popular = the live popular list less what the page already shows."""
    page.open(f"{service.url}/demo/articles/demo-001")
    p = page.page
    assert "Tarsova and Velmont agree to talks" in p.inner_text("h1")
    assert len(p.query_selector_all("article .body p")) >= 3
    related = page.ids("[data-recommender=related]")
    more = page.ids("[data-recommender=more-like-this]")
    popular = page.ids("[data-recommender=popular]")
    assert len(related) == 4 and {stories[a] for a in related} == {"tarsova-ceasefire"}
    assert len(more) == 4 and not set(more) & set(related) and "demo-001" not in more
    assert sum(stories[a] == "tarsova-ceasefire" for a in more) >= 3
    shown = {"demo-001", *related, *more}
    assert popular == [a for a in api_ids(f"{service.url}/v1/popular", k=20) if a not in shown][:5]
    assert popular == list(SEEDED)
    # Accessible lists: a named list of links to the demo pages, each with its section and a machine date.
    assert p.get_attribute("[data-recommender=related] ul", "aria-label") == "Related articles"
    first = p.query_selector("[data-recommender=related] li")
    assert first.query_selector("a").get_attribute("href") == f"{service.url}/demo/articles/{related[0]}"
    assert first.query_selector(".rec-section").inner_text().lower() == "world"
    published = pd.Timestamp(first.query_selector("time").get_attribute("datetime"))
    assert pd.Timedelta(0) < pd.Timestamp(DEMO_NOW) - published < pd.Timedelta(days=15)  # the shifted corpus
    # The story's own pieces say where they sit in its timeline (demo-001 opens its story: all are later).
    labels = [li.query_selector(".rec-story") for li in p.query_selector_all("[data-recommender=related] li")]
    assert [label.inner_text() if label else None for label in labels] == ["Later in this story"] * 4
    assert page.errors == [] and page.console == []
    ARTIFACTS.mkdir(exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / "widget-demo-article.png"), full_page=True)


def test_an_editors_pin_shows_its_label_in_the_widget(demo_root, embedder, page, tmp_path):
    """A pin set through the API appears at its position with the rule's public label; the other items carry
    none (issue 16)."""
    with Server(create_app(settings_for(demo_root, tmp_path), embedder=embedder)) as server:
        rule = {"kind": "pin", "article_id": "demo-124", "beside": "demo-001", "position": 2, "author": "desk",
                "reason": "the app failure is the day's other big story", "label": "Editors' choice"}
        added = httpx.post(f"{server.url}/v1/rules", json=rule, headers={"Authorization": f"Bearer {TOKEN}"})
        assert added.status_code == 201, added.text
        page.open(f"{server.url}/demo/articles/demo-001")
        items = page.page.query_selector_all("[data-recommender=related] li")
        assert page.ids("[data-recommender=related]")[1] == "demo-124"
        labels = [li.query_selector(".rec-label") for li in items]
        assert [label.inner_text() if label else None for label in labels] == [None, "Editors' choice", None, None]
        assert items[1].get_attribute("data-rec-source") == "pinned"
        assert items[0].get_attribute("data-rec-source") == "ranked"
        assert page.errors == [] and page.console == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.screenshot(path=str(ARTIFACTS / "widget-editors-pin.png"), full_page=True)


def test_an_interleaved_click_in_the_widget_is_credited_to_the_team_that_showed_it(demo_root, embedder, page,
                                                                                    tmp_path):
    """Issue 18: the widget keeps a reader id, sends it, carries the impression id to the click; the service
    credits the click to the arm whose team placed the clicked item in the team-draft merge."""
    from recommender.experiments.definition import Experiment
    from recommender.experiments.impression_token import experiment_tag, item_hash
    from recommender.experiments.interleaving import impression_rng, team_draft
    from recommender.query import Recommender
    from recommender.service.experiment_store import ExperimentStore

    definition = {"name": "widget-test", "kind": "interleave", "arms": [
        {"name": "control"}, {"name": "fresh", "settings": {"ranking": {"weight_freshness": 1.0}}}]}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Server(create_app(settings_for(demo_root, tmp_path), embedder=embedder)) as server:
        added = httpx.post(f"{server.url}/v1/experiments", json=definition, headers=auth)
        assert added.status_code == 201, added.text
        page.open(f"{server.url}/demo/articles/demo-001")
        reader = page.page.evaluate("localStorage.getItem('recommender.reader')")
        assert reader and len(reader) == 32
        links = page.page.query_selector_all("[data-recommender=related] a.rec-link")
        impression = links[0].get_attribute("data-rec-impression")
        assert impression and all(a.get_attribute("data-rec-impression") == impression for a in links)
        shown_ids = [a.get_attribute("data-rec-id") for a in links]
        clicked = shown_ids[1]
        links[1].click()
        page.page.wait_for_url(f"**/demo/articles/{clicked}")
        credited: dict[str, int] = {}
        deadline = time.monotonic() + 10
        while not credited and time.monotonic() < deadline:
            report = httpx.get(f"{server.url}/v1/experiments/widget-test", headers=auth).json()
            credited = {r["arm"]: r["clicks"] for r in report["report"]["rows"] if r["clicks"]}
            time.sleep(0.1)
        assert sum(credited.values()) == 1, credited
        # The oracle: the merge of the two arms' own lists (ranked again now, seconds later) for this impression's
        # random bits, the items its id says it showed (read with the site's key from the experiment store), and
        # the team of the clicked item.
        store = ExperimentStore(tmp_path / "experiments.sqlite")
        experiment = Experiment.from_dict(definition)
        shown = store.signer.read(impression, {experiment_tag(experiment.name): experiment})
        store.close()
        engine = Recommender.load(demo_root, embedder=embedder)
        k = len(shown.items)
        lists = [[r.article_id for r in Recommender(engine.stored, arm.build_config(engine.config)).related(
            "demo-001", k=k)] for arm in experiment.arms]
        merged, teams = team_draft(lists[0], lists[1], k, impression_rng(impression))
        assert list(shown.items) == [item_hash(a) for a in merged]
        assert shown_ids == merged[:len(shown_ids)]  # in order (the widget asks for a spare or two)
        team = teams[merged.index(clicked)]
        assert credited == {("control" if team == "a" else "fresh"): 1}
        assert page.errors == []


def test_click_is_counted_and_reaches_popular(service, page):
    """Following a related link sends a click beacon; the article then appears in /v1/popular and /metrics counts
    the click for the related widget; the reader's history holds it."""
    page.open(f"{service.url}/demo/articles/demo-001")
    before = set(api_ids(f"{service.url}/v1/popular", k=100))
    candidates = [a for a in page.ids("[data-recommender=related]") if a not in before]
    assert candidates, "every related article already has views; the test needs one without"
    target = candidates[0]
    with page.page.expect_request(lambda r: r.url.endswith("/v1/events/click") and r.method == "POST") as sent:
        page.page.click(f"[data-recommender=related] a[data-rec-id='{target}']")
    page.page.wait_for_url(f"**/demo/articles/{target}")
    assert json.loads(sent.value.post_data) == {"article_id": target, "widget": "related", "source_id": "demo-001"}
    deadline = time.monotonic() + 15  # the beacon is asynchronous: wait for the server to have counted it
    while target not in api_ids(f"{service.url}/v1/popular", k=100) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target in api_ids(f"{service.url}/v1/popular", k=100)
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'recommender_widget_clicks_total{widget="related"}' in metrics
    assert 'recommender_widget_impressions_total{widget="related"}' in metrics
    assert page.read()[0] == target


def metric_value(base: str, name: str, **labels: str) -> float:
    """One sample of the service's /metrics (0 when absent)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_impressions_are_counted_exactly_with_the_response_cache_on(service, page, host):
    """Every related list the widget receives counts one impression, also when the response cache answers it (it
    once answered before the counter ran), on the service's own page and on the host site; a request that is not
    the widget's fetch (a script, an <img> from elsewhere) counts none."""
    served: list[int] = []
    page.page.on("response", lambda r: served.append(r.status) if "/related?" in r.url and "widget=related" in r.url
                 else None)
    before = metric_value(service.url, "recommender_widget_impressions_total", widget="related")
    for _ in range(3):  # the same article: the second and third lists come from the response cache
        page.open(f"{service.url}/demo/articles/demo-001")
    page.open(host_page(host, "impressions.html", service.url, '<div data-recommender="related" '
                                                           'data-article-id="demo-001" data-k="4"></div>'))
    for _ in range(5):
        assert httpx.get(f"{service.url}/v1/articles/demo-001/related", params={"widget": "related"}).status_code \
            == 200
    httpx.get(f"{service.url}/v1/articles/demo-001/related", params={"widget": "related"},
              headers={"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    after = metric_value(service.url, "recommender_widget_impressions_total", widget="related")
    assert served and set(served) == {200} and len(served) == 4
    assert after - before == len(served)


def test_clicks_from_other_sites_are_refused(service, host):
    """With a CORS allow-list, the public click route takes clicks from the service's own pages and the allowed
    site only."""
    click = {"article_id": "demo-002", "widget": "related"}
    refused = httpx.post(f"{service.url}/v1/events/click", json=click, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    assert httpx.post(f"{service.url}/v1/events/click", json=click, headers={"Origin": host[0]}).status_code == 204
    assert httpx.post(f"{service.url}/v1/events/click", json=click,
                      headers={"Sec-Fetch-Site": "same-origin"}).status_code == 204


def test_read_articles_are_left_out(service, page, stories):
    """An article opened in this browser is not listed on the next page, though the API ranks it there; the
    history is capped at 50 ids, newest first."""
    assert "demo-032" in api_ids(f"{service.url}/v1/articles/demo-001/related", k=4)
    page.open(f"{service.url}/demo/articles/demo-032")
    page.open(f"{service.url}/demo/articles/demo-001")
    related = page.ids("[data-recommender=related]")
    assert "demo-032" not in related and len(related) == 4
    assert {stories[a] for a in related} == {"tarsova-ceasefire"}
    assert "demo-032" not in page.ids("[data-recommender=more-like-this]")
    assert page.read() == ["demo-001", "demo-032"]
    page.page.evaluate("localStorage.setItem('recommender.read', JSON.stringify("
                       "Array.from({length: 60}, (_, i) => 'old-' + i)))")
    page.open(f"{service.url}/demo/articles/demo-052")
    assert page.read()[:2] == ["demo-052", "old-0"] and len(page.read()) == 50


def test_widget_on_another_origin_with_fallback(service, host, page, stories):
    """A site on another origin includes the script with data-api: lists load through CORS, an unknown article
    falls back to popular when asked to and stays empty otherwise, links go to the articles' own urls."""
    url = host_page(host, "live.html", service.url, """
<div id="rel" data-recommender="related" data-article-id="demo-001" data-k="3"></div>
<div id="fb" data-recommender="related" data-article-id="no-such-article" data-k="3" data-fallback="popular"></div>
<div id="none" data-recommender="related" data-article-id="no-such-article-either"></div>
<div id="mlt" data-recommender="more-like-this" data-text="Geneva ceasefire talks" data-k="3"
     data-section="world"></div>""")
    page.open(url)
    rel = page.ids("#rel")
    assert len(rel) == 3 and {stories[a] for a in rel} == {"tarsova-ceasefire"}
    assert page.state("#fb") == "fallback" and page.ids("#fb") == list(SEEDED)[:3]
    assert page.state("#none") == "empty" and page.page.inner_html("#none") == ""
    mlt = page.ids("#mlt")
    assert len(mlt) == 3 and sum(stories[a] == "tarsova-ceasefire" for a in mlt) >= 2, page.console
    href = page.page.get_attribute(f"#rel a[data-rec-id='{rel[0]}']", "href")
    assert href.startswith("https://demo.example-news.test/world/")
    # The unknown ids' 404s are the only browser messages; the widget itself logs nothing.
    assert page.errors == [] and all("404" in m for m in page.console) and len(page.console) == 2


def test_page_intact_when_the_api_stops_or_hangs(demo_root, embedder, host, page, tmp_path):
    """The host page keeps its headline and text and raises no error when the API is stopped or never answers;
    the containers are left empty (the fallback fails the same way)."""
    containers = """<div id="rel" data-recommender="related" data-article-id="demo-001" data-fallback="popular"></div>
<div id="pop" data-recommender="popular"></div>"""
    app = create_app(settings_for(demo_root, tmp_path, cors_origins=[host[0]]), embedder=embedder)
    with Server(app) as server:
        stopped = host_page(host, "stopped.html", server.url, containers)
        page.open(stopped)
        assert page.state("#rel") == "ready" and page.ids("#pop")
    page.console.clear()
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(8)  # connections are queued by the kernel and never answered
    try:
        hung = host_page(host, "hanging.html", f"http://127.0.0.1:{hanging.getsockname()[1]}", containers, 300)
        for url in (stopped, hung):
            page.open(url)
            p = page.page
            assert p.inner_text("#headline") == "Harbour town council approves new sea wall"
            assert p.query_selector_all("#story p") and p.inner_text("#story").startswith("The council voted")
            for selector in ("#rel", "#pop"):
                assert page.state(selector) == "empty" and p.inner_html(selector) == ""
                assert p.get_attribute(selector, "aria-busy") == "false"
            if url == stopped:
                ARTIFACTS.mkdir(exist_ok=True)
                p.screenshot(path=str(ARTIFACTS / "widget-api-stopped.png"))
    finally:
        hanging.close()
    assert page.errors == []
    assert all(m.startswith("error: Failed to load resource: net::ERR_CONNECTION_REFUSED") for m in page.console)


def test_click_route_validates_and_limits(demo_root, embedder, tmp_path, service, host):
    """POST /v1/events/click: sendBeacon's text/plain accepted without a token; unknown ids, other widget names,
    extra fields and large bodies refused; the per-address bucket answers 429 with Retry-After."""
    url = f"{service.url}/v1/events/click"
    good = {"article_id": "demo-002", "widget": "popular", "source_id": "demo-001"}
    site = {"Origin": host[0]}  # the service's allow-list holds the host site
    assert httpx.post(url, content=json.dumps(good), headers={"Content-Type": "text/plain", **site}).status_code \
        == 204
    assert httpx.post(url, json={**good, "article_id": "nope"}, headers=site).json()["error"]["code"] == \
        "unknown_article"
    assert httpx.post(url, json={**good, "source_id": "nope"}, headers=site).status_code == 404
    assert httpx.post(url, json={**good, "widget": "sidebar"}, headers=site).status_code == 422
    assert httpx.post(url, json={**good, "count": 1000}, headers=site).status_code == 422
    assert httpx.post(url, content=b"not json", headers=site).status_code == 422
    big = {**good, "source_id": "x" * MAX_CLICK_BYTES}
    assert httpx.post(url, json=big, headers=site).status_code == 413
    assert 'recommender_widget_clicks_refused_total{reason="unknown_article"} 2.0' in httpx.get(
        f"{service.url}/metrics").text
    app = create_app(settings_for(demo_root, tmp_path, click_burst=2, click_rate_per_minute=1), embedder=embedder)
    with Server(app) as limited:
        replies = [httpx.post(f"{limited.url}/v1/events/click", json=good) for _ in range(3)]
        assert [r.status_code for r in replies] == [204, 204, 429]
        assert int(replies[2].headers["Retry-After"]) >= 1
        metrics = httpx.get(f"{limited.url}/metrics").text
        assert 'recommender_widget_clicks_refused_total{reason="rate_limited"} 1.0' in metrics


def test_rate_limiter_buckets():
    """Token buckets by hand: burst, refill at the rate, separate keys, bounded key count."""
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, max_keys=2, clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert limiter.take("a") == pytest.approx(0.5) and limiter.take("b") == 0.0
    now[0] = 1.0
    assert limiter.take("a") == 0.0
    limiter.take("c")  # a third key: the least recently seen ("b") is forgotten
    assert "b" not in limiter._buckets and len(limiter._buckets) == 2


def test_widget_files_and_demo_404(service):
    """The script and stylesheet are served small and cacheable; an unknown demo article is a 404 page."""
    script = httpx.get(f"{service.url}/widget.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) < 16_000 and "max-age" in script.headers["cache-control"]
    assert httpx.get(f"{service.url}/widget.css").headers["content-type"].startswith("text/css")
    missing = httpx.get(f"{service.url}/demo/articles/no-such-article")
    assert missing.status_code == 404 and "no-such-article" in missing.text
