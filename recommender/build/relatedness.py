"""Hybrid relatedness of indexed articles, computed at build time: dense + lexical + shared neighbours + entities.

A small sentence embedder blurs names and rare terms ("Zinoviev", "Kursk") that news readers judge relatedness
by, and a cosine alone ranks each pair on its own. The build therefore re-ranks every article's candidates with

    relatedness = min(1, (cos + lexical_weight * tfidf + snn_weight * snn + entity_weight * entities)
                         / (1 + lexical_weight + snn_weight))

- ``cos``: the embedding cosine;
- ``tfidf``: TF-IDF cosine over title + abstract + the whole body (scikit-learn, sublinear tf, English stop
  words, min_df 2, max_df 0.5);
- ``snn``: shared-nearest-neighbour overlap ``|N(a) & N(b)| / snn_size``, N(x) = x and its ``snn_size - 1`` best
  candidates under ``cos + tfidf`` (articles that the same articles are close to are about the same thing);
- ``entities``: TF-IDF cosine over the catalogue's ``tags`` (people, places, organisations: MIND's Wikidata
  entities, a CMS's tags), case-folded, so a rare shared entity weighs more than a common one. It is a bonus
  outside the weight sum: a pair that shares no entity (or a catalogue without tags) keeps exactly its
  three-signal score, so the popularity blend and the explanations read the same scale with or without tags.
  Only near-identical articles that also share their entities would pass 1; the cap keeps the scale a cosine's.

Candidates are the union of the dense top-k (the FAISS neighbours) and the TF-IDF top-k. The weights were chosen
on held-out halves of BBC News, Reuters-21578, AG News and the demo corpus, against BM25, entity overlap, Rocchio
expansion and reciprocal-rank fusion (``benchmarks/relevance_fusion.py``; numbers in docs/evaluation.md); the
entity weight on MIND (subcategory precision) and the demo corpus (same-story precision), the two catalogues here
that carry entities. Dividing by the weight sum (and the cap) keeps relatedness in [0, 1] like a cosine, so the
popularity blend weights keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..config import RelatednessConfig
from ..pairs import pair_matrix


@dataclass(frozen=True)
class LexicalModel:
    """A fitted TF-IDF vocabulary: ``terms`` and their ``idf``. An incremental rebuild transforms the changed
    articles with the previous build's model, so the unchanged rows (and their scores) stay valid."""

    terms: np.ndarray  # (V,) str
    idf: np.ndarray    # (V,) float64

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[LexicalModel, sp.csr_matrix]:
        """The model of ``texts`` and their L2-normalised TF-IDF rows (float32)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        min_df = 2 if len(texts) >= 10 else 1
        vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=min_df, max_df=0.5,
                                     dtype=np.float32)
        try:
            matrix = vectorizer.fit_transform(texts).tocsr()
        except ValueError:  # "empty vocabulary": every term too rare or too common (tiny catalogues)
            return cls(np.zeros(0, dtype=str), np.zeros(0)), sp.csr_matrix((len(texts), 1), dtype=np.float32)
        return cls(np.asarray(vectorizer.get_feature_names_out(), dtype=str), vectorizer.idf_), matrix

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows of ``texts`` under this model (terms outside the vocabulary are ignored)."""
        if not len(self.terms) or not len(texts):
            return sp.csr_matrix((len(texts), max(len(self.terms), 1)), dtype=np.float32)
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", dtype=np.float32,
                                     vocabulary={t: i for i, t in enumerate(self.terms.tolist())})
        vectorizer.idf_ = self.idf
        return vectorizer.transform(texts).tocsr()




def entity_matrix(tags: Sequence[Sequence[str]]) -> sp.csr_matrix | None:
    """L2-normalised TF-IDF rows (float32, sublinear tf) over each article's tags, case-folded and stripped;
    None when no article carries a tag. Rows without tags are all zero."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    documents = [[t.strip().casefold() for t in (row if row is not None else ()) if t and t.strip()]
                 for row in tags]
    if not any(documents):
        return None
    vectorizer = TfidfVectorizer(analyzer=lambda row: row, sublinear_tf=True, dtype=np.float32)
    return vectorizer.fit_transform(documents).tocsr()


def top_terms(matrix: sp.csr_matrix, terms: int) -> sp.csr_matrix:
    """Each row cut to its ``terms`` highest-weighted terms (Elasticsearch more_like_this's max_query_terms)."""
    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    if lengths.max(initial=0) <= terms:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    # By row, then weight descending: TF-IDF weights of L2-normalised rows lie in (0, 1], so one float key sorts.
    order = np.argsort(rows + (1.0 - matrix.data.astype(np.float64)) * 0.5, kind="stable")
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - matrix.indptr[rows[order]]
    keep = rank < terms
    return sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape)


def lexical_search(queries: sp.csr_matrix, transposed: sp.csr_matrix, rows: np.ndarray, k: int,
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows for each query row (``queries[i]`` is row ``rows[i]``, never its own result).

    Args:
        queries: (q, V) query rows (full or cut by ``top_terms``).
        transposed: (V, n) the TF-IDF matrix transposed (CSR: each term's postings).

    Returns:
        rows (q, k) int32 and scores (q, k) float32, best first; -1 and 0 where fewer rows share a term.
    """
    out = np.full((len(rows), k), -1, dtype=np.int32)
    scores = np.zeros((len(rows), k), dtype=np.float32)
    if k == 0:
        return out, scores
    for start in range(0, len(rows), batch_size):
        stop = min(start + batch_size, len(rows))
        block = (queries[start:stop] @ transposed).tocsr()
        for offset in range(stop - start):
            lo, hi = block.indptr[offset], block.indptr[offset + 1]
            cols, values = block.indices[lo:hi], block.data[lo:hi]
            mask = (cols != rows[start + offset]) & (values > 0)
            cols, values = cols[mask], values[mask]
            if len(cols) > k:
                top = np.argpartition(-values, k - 1)[:k]
                cols, values = cols[top], values[top]
            order = np.argsort(-values, kind="stable")
            out[start + offset, : len(order)] = cols[order]
            scores[start + offset, : len(order)] = values[order]
    return out, scores


def lexical_queries(matrix: sp.csr_matrix, config: RelatednessConfig) -> sp.csr_matrix:
    """The query rows of the TF-IDF candidate search: every term up to ``exact_lexical_max_count`` articles,
    else each row's ``lexical_query_terms`` strongest."""
    terms = config.lexical_query_terms
    if matrix.shape[0] <= config.exact_lexical_max_count or not terms:
        return matrix
    return top_terms(matrix, terms)




def candidate_matrix(dense_rows: np.ndarray, lexical_rows: np.ndarray, own: np.ndarray | None = None,
                     count: int | None = None) -> np.ndarray:
    """Each row's candidates, the union of its dense and lexical neighbours without itself: (n, c) int32,
    ascending, -1 padding at the end. ``own``/``count``: the row number of each given row and the catalogue's
    size, when the rows are a shard of it (default 0..n-1 of n)."""
    selves = np.arange(len(dense_rows)) if own is None else np.asarray(own, dtype=np.int64)
    n = len(dense_rows) if count is None else count
    both = np.concatenate([np.asarray(dense_rows, dtype=np.int64), np.asarray(lexical_rows, dtype=np.int64)], axis=1)
    both[(both < 0) | (both == selves[:, None])] = n
    both.sort(axis=1)
    repeated = np.zeros(both.shape, dtype=bool)
    repeated[:, 1:] = both[:, 1:] == both[:, :-1]
    both[repeated] = n
    both.sort(axis=1)
    width = int((both < n).sum(axis=1).max(initial=0))
    both = both[:, :width]
    both[both == n] = -1
    return both.astype(np.int32)






def member_matrix(candidates: np.ndarray, cosines: np.ndarray, lexical: np.ndarray, size: int,
                  own: np.ndarray | None = None) -> sp.csr_matrix:
    """(q, n) 0/1 rows: each row's shared-neighbour set, itself and its ``size - 1`` best candidates by
    cos + tfidf (ties to the lower row). ``own``: the row number of each given row (default 0..q-1, n = q)."""
    q = len(candidates)
    selves = np.arange(q) if own is None else np.asarray(own, dtype=np.int64)
    n = q if own is None else int(max(selves.max(initial=-1), candidates.max(initial=-1))) + 1
    score = np.where(candidates >= 0, cosines.astype(np.float64) + lexical, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")[:, : size - 1]
    chosen = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    rows = np.repeat(np.arange(q), chosen.shape[1])
    cols = chosen.ravel()
    keep = cols >= 0
    rows = np.concatenate([rows[keep], np.arange(q)])
    cols = np.concatenate([cols[keep], selves])
    members = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(q, n))
    members.sum_duplicates()
    members.sort_indices()
    return members


def ranked(candidates: np.ndarray, cosines: np.ndarray, lexical: np.ndarray, shared: np.ndarray, k: int,
           config: RelatednessConfig, entities: np.ndarray | None = None, count: int | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best candidates by the fused score (module doc); ``shared`` holds |N(a) & N(b)|.

    Args:
        entities: (n, c) entity cosine of every pair (``pair_entities``), or None when no article has tags.
        count: the catalogue's size when the rows are a shard of it (default: the rows given); ``k`` is capped
            at ``count - 1``.

    Returns:
        rows (n, k) int32 (-1 padding) and relatedness (n, k) float32, best first.
    """
    total = 1.0 + config.lexical_weight + config.snn_weight
    score = (cosines.astype(np.float64) + config.lexical_weight * lexical
             + config.snn_weight * shared.astype(np.float64) / config.snn_size)
    if entities is not None and config.entity_weight > 0:
        score = score + config.entity_weight * entities
    score = np.minimum(score / total, 1.0)
    score = np.where(candidates >= 0, score, -np.inf)
    k = max(min(k, (len(candidates) if count is None else count) - 1), 0)
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    rows = np.take_along_axis(candidates, order, axis=1).astype(np.int32)
    scores = np.take_along_axis(score, order, axis=1)
    rows = np.pad(rows, ((0, 0), (0, k - rows.shape[1])), constant_values=-1)
    scores = np.pad(scores, ((0, 0), (0, k - scores.shape[1])), constant_values=-np.inf)
    valid = rows >= 0
    return np.where(valid, rows, -1).astype(np.int32), np.where(valid, scores, 0.0).astype(np.float32)






def pair_entities(matrix: sp.csr_matrix | None, candidates: np.ndarray) -> np.ndarray | None:
    """Entity cosine of every (row, candidate) pair, (n, c) float32; None without an entity matrix. Cheap (a few
    tags per article), so a build computes it for every pair."""
    return None if matrix is None else pair_matrix(matrix, candidates)
