"""Same-story structure of a catalogue: copy groups (wire copies, re-publications) and stories (threads in time).

A leaf of pure functions shared by the two sides: the build groups the whole catalogue from its neighbour table
(``story_table``), so the service never compares candidates pairwise per request, and the query side places an
article that arrives between rebuilds with the same rules (``assign``, ``is_copy``).

- **copy groups**: connected components of the "is a copy of" graph, whose edges are neighbour pairs with cosine
  >= ``duplicate_similarity`` or headline word-set Jaccard >= ``duplicate_title_jaccard``. Transitive: if A
  copies B and B copies C, a list shows one of the three, never two.
- **stories**: articles taken in publication order; each joins the story of its most similar *earlier* neighbour
  published at most ``story_window_hours`` before it with cosine >= ``story_similarity`` (copies always share a
  story), else it starts a new story. The story id is the id of its first article, so ids stay the same across
  rebuilds while that article is in the catalogue, and a live article joins a story the same way on arrival
  (``assign``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from .config import RankingConfig, StoryConfig
from .pairs import pair_dots

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an and as at by for from in into is it of on or over the to with after says new".split())
# Headline Jaccard is only checked for neighbour pairs at least this similar: a copy under the same headline
# with an unrelated body is not a copy, and skipping the rest keeps the check O(pairs kept).
TITLE_CHECK_MIN_SIMILARITY = 0.5


def title_words(title: str) -> frozenset[str]:
    """Lower-cased content words of a headline, for near-duplicate headline checks."""
    return frozenset(w for w in _WORD.findall(title.lower()) if w not in _STOP)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two word sets (0 when either is empty)."""
    return len(a & b) / len(a | b) if a and b else 0.0


def is_copy(similarity: float, title_a: frozenset[str], title_b: frozenset[str], config: RankingConfig) -> bool:
    """Whether two articles are copies of one piece (wire copy, re-publication, light re-edit)."""
    return similarity >= config.duplicate_similarity or (
        similarity >= TITLE_CHECK_MIN_SIMILARITY and jaccard(title_a, title_b) >= config.duplicate_title_jaccard)


def title_jaccard(words: Sequence[frozenset[str]], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``jaccard(words[a[i]], words[b[i]])`` for every pair, vectorised (word sets as sparse 0/1 rows)."""
    vocabulary: dict[str, int] = {}
    indices = [vocabulary.setdefault(word, len(vocabulary)) for row in words for word in sorted(row)]
    sizes = np.fromiter((len(row) for row in words), dtype=np.int64, count=len(words))
    indptr = np.concatenate([[0], np.cumsum(sizes)])
    table = csr_matrix((np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int64), indptr),
                       shape=(len(words), max(len(vocabulary), 1)))
    shared = pair_dots(table, np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)).astype(np.float64)
    union = sizes[a] + sizes[b] - shared
    return np.where((sizes[a] > 0) & (sizes[b] > 0), shared / np.maximum(union, 1), 0.0)


@dataclass(frozen=True)
class StoryTable:
    """Per-row copy group (int, a component number) and story id (the id of the story's first article)."""

    copy_groups: np.ndarray  # (n,) int64
    story_ids: np.ndarray    # (n,) object


def neighbour_cosines(vectors: np.ndarray, neighbours: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Cosine of every row to each of its neighbours (0 at -1 padding), in batches (the table may hold fused
    relatedness rather than cosines; the copy and story thresholds are cosines)."""
    out = np.zeros(neighbours.shape, dtype=np.float32)
    for start in range(0, len(neighbours), batch_size):
        rows = np.asarray(neighbours[start:start + batch_size], dtype=np.int64)
        own = np.asarray(vectors[start:start + len(rows)], dtype=np.float32)
        others = np.asarray(vectors[np.where(rows >= 0, rows, 0)], dtype=np.float32)
        out[start:start + len(rows)] = np.where(rows >= 0, np.einsum("ijk,ik->ij", others, own), 0.0)
    return out


def copy_groups(neighbours: np.ndarray, scores: np.ndarray, titles: Sequence[str], config: RankingConfig
                ) -> np.ndarray:
    """Component number of every row in the copy graph over its neighbour pairs (rows alone get their own)."""
    n = len(titles)
    rows = np.repeat(np.arange(n), neighbours.shape[1]) if n else np.zeros(0, dtype=np.int64)
    cols = np.asarray(neighbours, dtype=np.int64).reshape(-1)
    sims = np.asarray(scores, dtype=np.float64).reshape(-1)
    valid = cols >= 0
    edge = valid & (sims >= config.duplicate_similarity)
    check = np.flatnonzero(valid & ~edge & (sims >= TITLE_CHECK_MIN_SIMILARITY))
    if len(check):
        similarity = title_jaccard([title_words(str(t)) for t in titles], rows[check], cols[check])
        edge[check[similarity >= config.duplicate_title_jaccard]] = True
    graph = coo_matrix((np.ones(int(edge.sum())), (rows[edge], cols[edge])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def time_order(published_hours: np.ndarray) -> np.ndarray:
    """Rows by publication time, undated rows last (stable)."""
    hours = np.where(np.isnan(published_hours), np.inf, published_hours)
    return np.argsort(hours, kind="stable")


def stories(ids: Sequence[str], neighbours: np.ndarray, scores: np.ndarray, published_hours: np.ndarray,
            groups: np.ndarray, config: StoryConfig) -> np.ndarray:
    """Story id of every row (see the module doc): (n,) object array of article ids."""
    n = len(ids)
    story = np.full(n, -1, dtype=np.int64)  # root row of each row's story
    group_story: dict[int, int] = {}
    for row in time_order(published_hours).tolist():
        root = group_story.get(int(groups[row]), -1)
        if root < 0 and not np.isnan(published_hours[row]):
            root = _best_earlier(neighbours[row], scores[row], story, published_hours, published_hours[row], config)
        story[row] = row if root < 0 else root
        group_story.setdefault(int(groups[row]), int(story[row]))
    id_array = np.asarray(ids, dtype=object)
    return id_array[story] if n else np.zeros(0, dtype=object)


def _best_earlier(candidates: np.ndarray, sims: np.ndarray, story: np.ndarray, published_hours: np.ndarray,
                  hours: float, config: StoryConfig) -> int:
    """Story root of the most similar already-placed candidate within the window, or -1."""
    candidates = np.asarray(candidates, dtype=np.int64)
    sims = np.asarray(sims, dtype=np.float64)
    ok = (candidates >= 0) & (sims >= config.story_similarity)
    safe = np.where(ok, candidates, 0)
    gap = hours - published_hours[safe]
    ok &= (story[safe] >= 0) & (gap >= 0) & (gap <= config.story_window_hours)
    if not ok.any():
        return -1
    best = int(np.argmax(np.where(ok, sims, -np.inf)))
    return int(story[candidates[best]])


def story_table(ids: Sequence[str], titles: Sequence[str], neighbours: np.ndarray, scores: np.ndarray,
                published_hours: np.ndarray, ranking: RankingConfig, config: StoryConfig) -> StoryTable:
    """Copy groups and stories of a whole build."""
    groups = copy_groups(neighbours, scores, titles, ranking)
    return StoryTable(groups, stories(ids, neighbours, scores, published_hours, groups, config))


def assign(candidate_rows: np.ndarray, candidate_sims: np.ndarray, title: str, hours: float,
           titles: np.ndarray, published_hours: np.ndarray, table: StoryTable, ranking: RankingConfig,
           config: StoryConfig, new_group: int, own_id: str) -> tuple[int, str]:
    """(copy group, story id) of an article arriving between rebuilds, from its nearest indexed neighbours.

    Args:
        candidate_rows / candidate_sims: its nearest rows in the build (a FAISS search), -1 ignored.
        title / hours: its headline and publication time (hours since the epoch; NaN when unknown).
        titles / published_hours: the build's, by row.
        table: the build's copy groups and stories.
        new_group: the group number to use when it copies nothing (unique among the caller's rows).
        own_id: its id, the story id when it starts a new story.
    """
    words = title_words(title)
    group, story = new_group, own_id
    best_story_similarity = -np.inf
    for row, similarity in zip(np.asarray(candidate_rows).tolist(), np.asarray(candidate_sims).tolist()):
        if row < 0:
            continue
        if group == new_group and is_copy(similarity, words, title_words(str(titles[row])), ranking):
            group, story = int(table.copy_groups[row]), str(table.story_ids[row])
            break
        gap = hours - published_hours[row]
        if (similarity >= config.story_similarity and similarity > best_story_similarity
                and not np.isnan(gap) and abs(gap) <= config.story_window_hours):
            best_story_similarity, story = similarity, str(table.story_ids[row])
    return group, story
