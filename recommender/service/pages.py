"""Pages next to the API: the embeddable widget (``/widget.js``, ``/widget.css``) and the demo article page.

``/demo/articles/{id}`` lays out an article of the loaded index as a news site would (section, headline,
standfirst, date, body) and fills its "Related", "More like this" and "Popular" panels with the widget, exactly
as a site's own article template would include it.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from string import Template
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from ..storage.layout import ARTICLES

STATIC = Path(__file__).parent / "static"
PAGE_COLUMNS = ["id", "title", "abstract", "body", "section", "published_at", "language", "tags"]
ASSETS = {"widget.js": "text/javascript; charset=utf-8", "widget.css": "text/css; charset=utf-8"}

PAGE = Template("""<!doctype html>
<html lang="$language">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title · The Demo Courier</title>
<style>
  :root { --ink: #1a1a1a; --muted: #5f6368; --rule: #e2ded6; --accent: #b3261e; --rec-link: var(--ink); }
  * { box-sizing: border-box; }
  body { margin: 0; color: var(--ink); background: #fbfaf7; font: 17px/1.6 Georgia, "Times New Roman", serif; }
  .masthead { border-bottom: 3px double var(--ink); background: #fff; }
  .masthead .inner, main { max-width: 1080px; margin: 0 auto; padding: 0 20px; }
  .masthead .inner { display: flex; align-items: baseline; justify-content: space-between; padding-block: 14px; }
  .brand { font: 700 30px/1 Georgia, serif; letter-spacing: -.5px; color: var(--ink); }
  .edition { font: 13px/1.4 system-ui, sans-serif; color: var(--muted); }
  main { display: grid; grid-template-columns: minmax(0, 1fr) 300px; gap: 48px; padding-block: 28px 48px; }
  @media (max-width: 820px) { main { grid-template-columns: 1fr; gap: 28px; } }
  .kicker { font: 700 13px/1 system-ui, sans-serif; text-transform: uppercase; letter-spacing: .08em;
            color: var(--accent); margin: 0 0 10px; }
  h1 { font-size: clamp(28px, 4vw, 40px); line-height: 1.15; margin: 0 0 14px; letter-spacing: -.3px; }
  .standfirst { font-size: 20px; line-height: 1.45; color: #333; margin: 0 0 16px; }
  .dateline { font: 14px/1.4 system-ui, sans-serif; color: var(--muted); padding-bottom: 16px;
              border-bottom: 1px solid var(--rule); margin-bottom: 22px; }
  .body p { margin: 0 0 1.1em; }
  .tags { list-style: none; padding: 0; margin: 24px 0 0; display: flex; flex-wrap: wrap; gap: 8px; }
  .tags li { font: 13px/1 system-ui, sans-serif; border: 1px solid var(--rule); border-radius: 999px;
             padding: 6px 10px; background: #fff; }
  .panel h2 { font: 700 14px/1 system-ui, sans-serif; text-transform: uppercase; letter-spacing: .08em;
              border-top: 3px solid var(--ink); padding-top: 10px; margin: 0 0 14px; }
  .panel { font-family: system-ui, sans-serif; font-size: 15px; margin-bottom: 32px; }
  .related { margin-top: 40px; }
  .related .rec-list { grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); column-gap: 24px; }
  .related .rec-item { border-bottom: 0; border-top: 1px solid var(--rule); padding: 10px 0 0; }
  .panel:has([data-recommender-state="empty"]) { display: none; }
  .panel [data-recommender-state="loading"] { min-height: 4em; }
  footer { border-top: 1px solid var(--rule); color: var(--muted); font: 13px/1.5 system-ui, sans-serif;
           text-align: center; padding: 20px; }
</style>
</head>
<body>
<header class="masthead"><div class="inner">
  <span class="brand">The Demo Courier</span>
  <span class="edition">Demo corpus · fictional news</span>
</div></header>
<main>
  <article>
    <p class="kicker">$section</p>
    <h1>$title</h1>
    <p class="standfirst">$abstract</p>
    <p class="dateline"><time datetime="$published_iso">$published_human</time></p>
    <div class="body">
$paragraphs
    </div>
    <ul class="tags" aria-label="Topics">$tags</ul>
    <section class="panel related" aria-labelledby="related-heading">
      <h2 id="related-heading">Related</h2>
      <div data-recommender="related" data-article-id="$id" data-k="4" data-fallback="popular"
           data-label="Related articles"></div>
    </section>
  </article>
  <aside>
    <section class="panel" aria-labelledby="more-heading">
      <h2 id="more-heading">More like this</h2>
      <div data-recommender="more-like-this" data-ids="$id" data-history="3" data-k="4"
           data-label="More like this"></div>
    </section>
    <section class="panel" aria-labelledby="popular-heading">
      <h2 id="popular-heading">Popular</h2>
      <div data-recommender="popular" data-k="5" data-label="Popular articles"></div>
    </section>
  </aside>
</main>
<footer>Every article on this site is invented for the recommender's demo.</footer>
<script src="/widget.js" data-read="$id" data-link="/demo/articles/{id}" defer></script>
</body>
</html>
""")

NOT_FOUND = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found</title></head>
<body><h1>No such article</h1><p>{message}</p></body></html>"""


@cache
def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def render_article(article: dict[str, Any]) -> str:
    """The demo page of one article (the fields of ``Recommender.article``), every value HTML-escaped."""
    def text(name: str) -> str:
        value = article.get(name)
        return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)

    published = pd.Timestamp(article["published_at"]) if pd.notna(article.get("published_at")) else None
    paragraphs = [p.strip() for p in text("body").split("\n\n") if p.strip()] or [text("abstract")]
    tags = article.get("tags")
    tags = [] if tags is None or isinstance(tags, str) else [str(t) for t in tags]
    return PAGE.substitute(
        id=html.escape(text("id")), title=html.escape(text("title")), abstract=html.escape(text("abstract")),
        section=html.escape(text("section")), language=html.escape(text("language") or "en"),
        published_iso=published.isoformat() if published is not None else "",
        published_human=published.strftime("%-d %B %Y, %H:%M UTC") if published is not None else "",
        paragraphs="\n".join(f"      <p>{html.escape(p)}</p>" for p in paragraphs),
        tags="".join(f"<li>{html.escape(t)}</li>" for t in tags),
    )


router = APIRouter(include_in_schema=False)


@router.api_route("/widget.js", methods=["GET", "HEAD"])
@router.api_route("/widget.css", methods=["GET", "HEAD"])
async def asset(request: Request) -> Response:
    """The widget script and its default stylesheet (cacheable for five minutes)."""
    name = request.url.path.rsplit("/", 1)[-1]
    return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=300"})


demo_router = APIRouter(include_in_schema=False)


def read_article(build_dir: Path, article_id: str) -> dict[str, Any] | None:
    """All stored fields of one article of a build (the engine keeps only the list columns in memory)."""
    rows = pd.read_parquet(build_dir / ARTICLES, columns=PAGE_COLUMNS, filters=[("id", "==", article_id)])
    return rows.iloc[0].to_dict() if len(rows) else None


@demo_router.get("/demo/articles/{article_id:path}", response_class=HTMLResponse)
def demo_article(request: Request, article_id: Annotated[str, PathParam(min_length=1, max_length=200)]) -> Response:
    """An article of the loaded index laid out as a news page, with the three widget panels (a thread-pool
    route: it reads the article's body from the build's Parquet file)."""
    recommender = request.app.state.service.served.recommender
    article = None
    if article_id in recommender.row_of and recommender.contains(article_id):
        article = read_article(recommender.directory, article_id)
    if article is None:
        message = html.escape(f"The article {article_id!r} is not in the loaded index (or was taken down).")
        return HTMLResponse(NOT_FOUND.format(message=message), status_code=404)
    return HTMLResponse(render_article(article))


def install_pages(app: FastAPI, demo_pages: bool) -> None:
    """Serve the widget files, and the demo article pages when ``demo_pages``."""
    app.include_router(router)
    if demo_pages:
        app.include_router(demo_router)
