"""Hybrid relatedness of indexed articles, computed at build time: dense + lexical + shared neighbours.

A small sentence embedder blurs names and rare terms ("Zinoviev", "Kursk") that news readers judge relatedness
by, and a cosine alone ranks each pair on its own. The build therefore re-ranks every article's candidates with

    relatedness = (cos + lexical_weight * tfidf + snn_weight * snn) / (1 + lexical_weight + snn_weight)

- ``cos``: the embedding cosine;
- ``tfidf``: TF-IDF cosine over title + abstract + the whole body (scikit-learn, sublinear tf, English stop
  words, min_df 2, max_df 0.5);
- ``snn``: shared-nearest-neighbour overlap ``|N(a) & N(b)| / snn_size``, N(x) = x and its ``snn_size - 1`` best
  candidates under ``cos + tfidf`` (articles that the same articles are close to are about the same thing).

Candidates are the union of the dense top-k (the FAISS neighbours) and the TF-IDF top-k. The weights were chosen
on held-out halves of BBC News, Reuters-21578, AG News and the demo corpus, against BM25, entity overlap, Rocchio
expansion and reciprocal-rank fusion (``benchmarks/relevance_fusion.py``; numbers in docs/evaluation.md). Dividing
by the weight sum keeps relatedness in [0, 1] like a cosine, so the popularity blend weights keep their meaning.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from .config import RelatednessConfig


def lexical_matrix(texts: Sequence[str]) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows of ``texts`` (float32); an empty vocabulary gives all-zero rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    min_df = 2 if len(texts) >= 10 else 1
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=min_df, max_df=0.5,
                                 dtype=np.float32)
    try:
        return vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # "empty vocabulary": every term too rare or too common (tiny catalogues)
        return sp.csr_matrix((len(texts), 1), dtype=np.float32)


def top_terms(matrix: sp.csr_matrix, terms: int) -> sp.csr_matrix:
    """Each row cut to its ``terms`` highest-weighted terms (Elasticsearch more_like_this's max_query_terms)."""
    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    if lengths.max(initial=0) <= terms:
        return matrix
    keep = np.zeros(matrix.nnz, dtype=bool)
    for row in np.flatnonzero(lengths).tolist():
        start, stop = matrix.indptr[row], matrix.indptr[row + 1]
        weights = matrix.data[start:stop]
        chosen = np.argpartition(-weights, terms - 1)[:terms] if stop - start > terms else np.arange(stop - start)
        keep[start + chosen] = True
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)[keep]
    return sp.csr_matrix((matrix.data[keep], (rows, matrix.indices[keep])), shape=matrix.shape)


def lexical_neighbours(matrix: sp.csr_matrix, k: int, query_terms: int | None = 25,
                       batch_size: int = 256) -> np.ndarray:
    """Each row's ``k`` best other rows by TF-IDF, (n, k) int64, -1 where fewer share a term.

    Candidate generation only (``fuse`` scores the candidates with the full vectors): each query is cut to its
    ``query_terms`` strongest terms, so a block multiplies through the postings of rare, telling terms instead of
    nearly every document; None searches with every term (an exact all-pairs TF-IDF search, quadratic).
    """
    n = matrix.shape[0]
    k = max(min(k, n - 1), 0)
    out = np.full((n, k), -1, dtype=np.int64)
    if k == 0:
        return out
    queries = top_terms(matrix, query_terms) if query_terms else matrix
    transposed = matrix.T.tocsr()
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        block = (queries[start:stop] @ transposed).tocsr()
        for offset in range(stop - start):
            row = start + offset
            lo, hi = block.indptr[offset], block.indptr[offset + 1]
            cols, scores = block.indices[lo:hi], block.data[lo:hi]
            mask = cols != row
            cols, scores = cols[mask], scores[mask]
            if len(cols) > k:
                top = np.argpartition(-scores, k - 1)[:k]
                cols, scores = cols[top], scores[top]
            order = np.argsort(-scores, kind="stable")
            out[row, : len(order)] = cols[order]
    return out


def fuse(vectors: np.ndarray, matrix: sp.csr_matrix, dense_rows: np.ndarray, lexical_rows: np.ndarray, k: int,
         config: RelatednessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Every row's ``k`` most related rows by the fused score (see the module doc).

    Args:
        vectors: (n, d) unit vectors.
        matrix: (n, V) L2-normalised TF-IDF rows (``lexical_matrix``).
        dense_rows / lexical_rows: (n, *) candidate rows from FAISS and from ``lexical_neighbours``, -1 padded.
        k: neighbours kept per row.

    Returns:
        rows (n, k) int32 (-1 padding) and relatedness (n, k) float32, best first.
    """
    n = len(vectors)
    candidates: list[np.ndarray] = []
    cosines: list[np.ndarray] = []
    lexical: list[np.ndarray] = []
    members: list[frozenset[int]] = []
    for row in range(n):
        found = np.concatenate([dense_rows[row], lexical_rows[row]]).astype(np.int64)
        found = np.unique(found[(found >= 0) & (found != row)])
        cos = np.asarray(vectors[found] @ vectors[row], dtype=np.float64)
        lex = (matrix[found] @ matrix[row].T).toarray().ravel().astype(np.float64)
        best = found[np.argsort(-(cos + lex), kind="stable")[: config.snn_size - 1]]
        candidates.append(found)
        cosines.append(cos)
        lexical.append(lex)
        members.append(frozenset(best.tolist()) | {row})
    total = 1.0 + config.lexical_weight + config.snn_weight
    k = max(min(k, n - 1), 0)
    out_rows = np.full((n, k), -1, dtype=np.int32)
    out_scores = np.zeros((n, k), dtype=np.float32)
    for row in range(n):
        found = candidates[row]
        if not len(found):
            continue
        own = members[row]
        snn = np.fromiter((len(own & members[j]) for j in found.tolist()), dtype=np.float64,
                          count=len(found)) / config.snn_size
        score = (cosines[row] + config.lexical_weight * lexical[row] + config.snn_weight * snn) / total
        order = np.argsort(-score, kind="stable")[:k]
        out_rows[row, : len(order)] = found[order]
        out_scores[row, : len(order)] = score[order]
    return out_rows, out_scores


def related_neighbours(vectors: np.ndarray, texts: Sequence[str], dense: tuple[np.ndarray, np.ndarray], k: int,
                       config: RelatednessConfig) -> tuple[np.ndarray, np.ndarray]:
    """The build's related table: fused neighbours, or the dense ones as they are when fusion is off."""
    if not config.enabled or len(vectors) < 2:
        return dense
    matrix = lexical_matrix(texts)
    query_terms = None if len(texts) <= config.exact_lexical_max_count else config.lexical_query_terms
    lexical = lexical_neighbours(matrix, config.lexical_candidates, query_terms)
    return fuse(vectors, matrix, dense[0], lexical, k, config)
