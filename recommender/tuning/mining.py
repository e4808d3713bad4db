"""Training pairs mined from a site's own catalogue: same story, same section, copies, headline <-> body, halves.

Every pair is (anchor text, positive text) with its ``kind``, the article rows it came from and a ``group``: the
anchor's section (else its story) as an integer, so the loss does not treat another article of the same group
in the batch as a negative (``training.GroupMaskedMNRL``). Articles are split first (``split_rows``) and pairs
are mined inside one side of the split, so a held-out article never appears in a training pair.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pandas as pd

PAIR_COLUMNS = ["anchor", "positive", "kind", "group", "anchor_row", "positive_row"]
# Halves of a body shorter than this (words each) say too little to be a pair.
MIN_HALF_WORDS = 30


def split_rows(ids: Sequence[str], held_out_share: float, seed: int = 0) -> np.ndarray:
    """(n,) bool, True for the held-out articles: a seeded hash of each id, stable as the catalogue grows."""
    def draw(article_id: str) -> float:
        digest = hashlib.sha256(f"{seed}:{article_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    return np.fromiter((draw(str(a)) < held_out_share for a in ids), dtype=bool, count=len(ids))


def group_codes(articles: pd.DataFrame, story_ids: np.ndarray) -> np.ndarray:
    """(n,) int64: each article's section as a number, else (no section) its story's; the mask key of the loss."""
    sections = articles["section"].fillna("").astype(str).to_numpy() if "section" in articles else None
    stories = np.asarray(story_ids, dtype=object).astype(str)
    keys = np.where(sections != "", np.char.add("section:", sections.astype(str)),
                    np.char.add("story:", stories)) if sections is not None else np.char.add("story:", stories)
    _, codes = np.unique(keys, return_inverse=True)
    return codes.astype(np.int64)


def group_pairs(labels: np.ndarray, rows: np.ndarray, per_article: int, rng: np.random.Generator
                ) -> list[tuple[int, int]]:
    """``per_article`` (anchor, positive) row pairs per article of ``rows``, the positive drawn from the other
    rows of ``rows`` with the same label (labels that are empty strings or None group nothing)."""
    members: dict[object, list[int]] = {}
    for row in rows.tolist():
        label = labels[row]
        if label is not None and label != "" and not (isinstance(label, float) and np.isnan(label)):
            members.setdefault(label, []).append(row)
    found = []
    for group in members.values():
        if len(group) < 2:
            continue
        for row in group:
            others = [r for r in group if r != row]
            for positive in rng.choice(others, size=min(per_article, len(others)), replace=False).tolist():
                found.append((row, int(positive)))
    return found


def _body(articles: pd.DataFrame, row: int) -> str:
    parts = (str(articles["abstract"].iat[row] or ""), str(articles["body"].iat[row] or ""))
    return " ".join(" ".join(p.split()) for p in parts if p.strip())


def text_pairs(articles: pd.DataFrame, rows: np.ndarray, kind: str, max_chars: int) -> list[tuple[str, str, int]]:
    """Pairs inside one article: "headline" (headline <-> standfirst and body) or "halves" (first <-> second
    half of the body), as (anchor text, positive text, row)."""
    found = []
    for row in rows.tolist():
        body = _body(articles, row)
        if kind == "headline":
            title = str(articles["title"].iat[row]).strip()
            if title and body:
                found.append((title, body[:max_chars], row))
            continue
        words = body.split()
        if len(words) >= 2 * MIN_HALF_WORDS:
            middle = len(words) // 2
            found.append((" ".join(words[:middle])[:max_chars], " ".join(words[middle:])[:max_chars], row))
    return found


def mine_site_pairs(articles: pd.DataFrame, texts: Sequence[str], story_ids: np.ndarray, copy_groups: np.ndarray,
                    rows: np.ndarray, kinds: Sequence[str], per_article: int, max_chars: int,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Pairs of ``kinds`` among the articles at ``rows`` (one side of the split).

    Args:
        articles: the validated catalogue (``id``, ``title``, ``abstract``, ``body``, ``section``).
        texts: each article's embedding text (what a build embeds).
        story_ids / copy_groups: each article's story and copy group (``stories.story_table`` on base vectors).
        rows: the articles to mine among.
        kinds: any of "story", "section", "copy", "headline", "halves".
        per_article: pairs per article and group kind.
        max_chars: characters per text of the in-article kinds.
        rng: the seeded generator.

    Returns:
        A frame of ``PAIR_COLUMNS`` (``positive_row`` is -1 for the in-article kinds, whose texts are parts).
    """
    groups = group_codes(articles, story_ids)
    labels = {"story": np.asarray(story_ids, dtype=object), "copy": np.asarray(copy_groups, dtype=object),
              "section": articles["section"].fillna("").astype(str).to_numpy(dtype=object)
              if "section" in articles else np.full(len(articles), "", dtype=object)}
    records: list[tuple[str, str, str, int, int, int]] = []
    for kind in kinds:
        if kind in labels:
            for anchor, positive in group_pairs(labels[kind], rows, per_article, rng):
                records.append((texts[anchor], texts[positive], kind, int(groups[anchor]), anchor, positive))
        else:
            for anchor_text, positive_text, row in text_pairs(articles, rows, kind, max_chars):
                records.append((anchor_text, positive_text, kind, int(groups[row]), row, -1))
    return pd.DataFrame.from_records(records, columns=PAIR_COLUMNS)


def cap_pairs(pairs: pd.DataFrame, max_pairs: int | None, rng: np.random.Generator) -> pd.DataFrame:
    """At most ``max_pairs`` pairs, an equal share per kind where a kind has enough (the rest go to the others),
    shuffled."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return pairs.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
    sizes = pairs["kind"].value_counts().sort_values()
    chosen, left = [], max_pairs
    for n, (kind, size) in enumerate(sizes.items()):
        take = min(int(size), left // (len(sizes) - n))
        kept = pairs[pairs["kind"] == kind]
        chosen.append(kept.iloc[np.sort(rng.choice(len(kept), size=take, replace=False))])
        left -= take
    merged = pd.concat(chosen, ignore_index=True)
    return merged.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)


def pairs_digest(pairs: pd.DataFrame) -> str:
    """sha256 over the training pairs (kind, anchor, positive and any negative, in order): the training data's
    identity in the tuned model's name."""
    digest = hashlib.sha256()
    columns = [c for c in ("kind", "anchor", "positive", "negative") if c in pairs]
    for values in zip(*(pairs[c].astype(str) for c in columns)):
        for value in values:
            digest.update(value.encode())
            digest.update(b"\x00")
    return digest.hexdigest()
