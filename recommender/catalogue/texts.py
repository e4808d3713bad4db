"""The texts a build derives from each article: the one it embeds and the one its TF-IDF relatedness reads."""

from __future__ import annotations

import pandas as pd


def embedding_text(title: str, abstract: str, body: str, max_chars: int) -> str:
    """The one text embedded per article: title, then abstract (standfirst), then the start of the body.

    The headline carries the story; the standfirst and lead paragraph carry who/where/what. all-MiniLM-L6-v2
    reads at most 256 word pieces (~1,000-1,200 characters of English), so ``max_chars`` (1,500 by default) is
    cut at a word boundary and the model truncates the rest: later paragraphs would never be seen anyway.
    """
    title = title.strip()
    head = title if not title or title[-1] in ".!?:" else title + "."
    text = " ".join(part for part in (head, abstract.strip(), " ".join(body.split())) if part)
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


def lexical_texts(articles: pd.DataFrame) -> list[str]:
    """Title + abstract + the whole body of each row: the document of the lexical (TF-IDF) relatedness."""
    parts = [articles[c].fillna("").astype(str) if c in articles else pd.Series("", index=articles.index)
             for c in ("title", "abstract", "body")]
    return [" ".join(p for p in row if p) for row in zip(*parts)]


def embedding_texts(articles: pd.DataFrame, max_chars: int) -> list[str]:
    """``embedding_text`` for every row of a validated catalogue frame."""
    return [embedding_text(t, a, b, max_chars) for t, a, b in
            zip(articles["title"], articles["abstract"], articles["body"])]
