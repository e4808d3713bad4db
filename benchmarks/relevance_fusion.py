"""Relevance-signal fusion benchmark: which mix of dense, lexical, entity and neighbourhood signals ranks "related".

Usage:
    python benchmarks/relevance_fusion.py [--data DIR] [--seed 0] [--slice 2000] [--cost-articles 100000] [--out FILE]

Signals (each a symmetric article-pair score that a build can compute for every article's candidate list):
    cos        dense cosine of the engine's all-MiniLM-L6-v2 vectors (text = ``catalogue.embedding_text``,
               1,500 characters), read through the SQLite embedding cache .cache/embeddings.sqlite
    tfidf      TF-IDF cosine over title + abstract + body (``baselines.article_texts``)
    bm25       BM25 (bm25s, lucene idf) of b's terms against a's unique terms, divided by a's self-score,
               symmetrised: 0.5 * (s(a,b)/s(a,a) + s(b,a)/s(b,b))
    ent        Jaccard of the two articles' entity sets (capitalised names, no model; see ``entities``)
    snn        shared-nearest-neighbour overlap |N_m(a) & N_m(b)| / m of the dense top-m lists (self included)
    rocchio    cosine of Rocchio-expanded vectors: normalise(v + beta * mean of its top-r dense neighbours)
Fusions: weighted sums of the raw (already [0, 1]) scores, tuned by grid search on a seeded half of the queries
(BBC, Reuters, AG News, demo) or pairs (SemEval) and reported on the other half and on all; reciprocal-rank
fusion (RRF, k=60) of the per-signal rankings for lists. Related lists are ranked only among the candidates a
build would generate: the union of the dense top-50 and the TF-IDF top-50 of each article.

Tables are printed; everything is written to benchmarks/out/relevance_fusion.json (or ``--out``). A smoke run:
``--slice 100 --cost-articles 20000 --no-sweep --no-views --out /tmp/relevance_fusion.json`` with
``RECOMMENDER_TEST_CACHE`` pointing at a copy of the embedding cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from recommender.catalogue import embedding_texts, validate  # noqa: E402
from recommender.config import CatalogueConfig, EmbedderConfig  # noqa: E402


def _datasets_module():
    """``recommender.evaluation.datasets`` without the package ``__init__`` (which imports the whole engine)."""
    import importlib.util
    import sys
    import types

    if "recommender.evaluation" not in sys.modules:
        package = types.ModuleType("recommender.evaluation")
        package.__path__ = [str(REPO / "recommender" / "evaluation")]
        sys.modules["recommender.evaluation"] = package
    spec = importlib.util.spec_from_file_location("recommender.evaluation.datasets",
                                                  REPO / "recommender" / "evaluation" / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def article_texts(articles: pd.DataFrame) -> list[str]:
    """Title + abstract + body (the same text as ``recommender.evaluation.baselines.article_texts``)."""
    parts = [articles[c].fillna("").astype(str) if c in articles else pd.Series("", index=articles.index)
             for c in ("title", "abstract", "body")]
    return [" ".join(p for p in row if p) for row in zip(*parts)]

OUT = Path(__file__).parent / "out"
CACHE = Path(os.environ.get("RECOMMENDER_TEST_CACHE", REPO / ".cache" / "embeddings.sqlite"))
K = 5
CANDIDATES = 50


# ----------------------------------------------------------------------------------------------------- data

@dataclass
class Corpus:
    """A catalogue with a relevance label per article (lists) or judged pairs (SemEval)."""

    name: str
    ids: list[str]
    embed_texts: list[str]
    lex_texts: list[str]
    labels: np.ndarray | None = None          # per article (section/topic/story)
    dup_group: np.ndarray | None = None       # per article: id of its exact-duplicate-body group
    pairs: np.ndarray | None = None           # (n, 2) row indices (SemEval)
    gold: np.ndarray | None = None            # -Overall per pair
    segments: list[tuple[str, str, str]] = field(default_factory=list)   # (title, abstract, body)
    vectors: np.ndarray | None = None


def _catalogue(frame: pd.DataFrame) -> pd.DataFrame:
    catalogue = validate(frame.copy(), CatalogueConfig())
    if len(catalogue.rejects):
        print(f"  note: {len(catalogue.rejects)} rows rejected by validation")
    return catalogue.articles.reset_index(drop=True)


def _dup_groups(bodies: list[str]) -> np.ndarray:
    key = [" ".join(b.split()).lower() for b in bodies]
    first: dict[str, int] = {}
    return np.array([first.setdefault(k, i) for i, k in enumerate(key)])


def corpus_from(name: str, frame: pd.DataFrame, label_column: str) -> Corpus:
    """A list-evaluation corpus from a raw frame (validated exactly as a build validates it)."""
    labels = frame.set_index("id")[label_column].astype(str)
    articles = _catalogue(frame.drop(columns=[c for c in ("story",) if c in frame]))
    texts = article_texts(articles)
    return Corpus(name, list(articles["id"]), embedding_texts(articles, EmbedderConfig().max_chars), texts,
                  labels=labels.loc[articles["id"]].to_numpy(),
                  dup_group=_dup_groups([b if b.strip() else t for b, t in zip(articles["body"], texts)]),
                  segments=_segments(articles))


def _segments(articles: pd.DataFrame) -> list[tuple[str, str, str]]:
    cols = [articles[c].fillna("").astype(str) if c in articles else pd.Series("", index=articles.index)
            for c in ("title", "abstract", "body")]
    return list(zip(*cols))


def load_all(data: Path, slice_size: int = 2000, seed: int = 0) -> dict[str, Corpus]:
    """Every dataset of the benchmark."""
    ds = _datasets_module()
    load_bbc, load_semeval, load_reuters, load_ag_news = ds.load_bbc, ds.load_semeval, ds.load_reuters, ds.load_ag_news
    sets: dict[str, Corpus] = {}
    sets["bbc"] = corpus_from("bbc", load_bbc(data).articles, "section")
    semeval = load_semeval(data, original_only=True, lang_pairs=["en-en"])
    articles = _catalogue(semeval.articles)
    row = {a: i for i, a in enumerate(articles["id"])}
    pairs = np.array([[row[a], row[b]] for a, b in zip(semeval.pairs["id1"], semeval.pairs["id2"])])
    sets["semeval"] = Corpus("semeval", list(articles["id"]), embedding_texts(articles, EmbedderConfig().max_chars),
                             article_texts(articles), pairs=pairs, segments=_segments(articles),
                             gold=-semeval.pairs["overall"].to_numpy(dtype=np.float64))
    demo = pd.read_json(REPO / "recommender" / "catalogue" / "demo_data" / "articles.jsonl", lines=True, dtype=False)
    sets["demo"] = corpus_from("demo", demo.assign(story=demo["story"].astype(str)), "story")
    sets["reuters"] = corpus_from("reuters", load_reuters(data, limit=slice_size, seed=seed).articles, "section")
    sets["ag_news"] = corpus_from("ag_news", load_ag_news(data, limit=slice_size, seed=seed).articles, "section")
    return sets


def embed_all(sets: dict[str, Corpus], progress: bool = False) -> dict[str, int]:
    """Attach dense vectors to every corpus through the shared cache; returns how many were embedded now."""
    from recommender.embedding import EmbeddingCache, embed_cached, make_embedder

    embedder = make_embedder()
    cache = EmbeddingCache(CACHE)
    fresh = {}
    try:
        for name, corpus in sets.items():
            start = time.time()
            corpus.vectors, fresh[name] = embed_cached(embedder, corpus.embed_texts, cache)
            if progress:
                print(f"  embedded {name}: {fresh[name]} new of {len(corpus.ids)} ({time.time() - start:.1f}s)",
                      flush=True)
    finally:
        cache.close()
    return fresh


# -------------------------------------------------------------------------------------------------- signals
# Every signal is an (n, n) float32 matrix of a symmetric pair score over one corpus (the corpora here have at
# most 2,225 articles; a build computes the same scores only for each article's ~100 candidates).

def dense_cosine(vectors: np.ndarray) -> np.ndarray:
    """Cosine of unit vectors."""
    return (vectors @ vectors.T).astype(np.float32)


@dataclass(frozen=True)
class TfidfSpec:
    """TF-IDF variant (scikit-learn ``TfidfVectorizer``; default token pattern ``\\b\\w\\w+\\b``, lower-cased)."""

    sublinear_tf: bool = True
    stop_words: str | None = "english"
    min_df: int = 1
    max_df: float = 0.5
    ngram_max: int = 1

    @property
    def label(self) -> str:
        return (f"tfidf(sublinear={self.sublinear_tf},stop={self.stop_words},min_df={self.min_df},"
                f"max_df={self.max_df},ngrams=1-{self.ngram_max})")


def tfidf_matrix(texts: list[str], spec: TfidfSpec) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    min_df = spec.min_df if len(texts) > 50 * spec.min_df else 1
    vectorizer = TfidfVectorizer(sublinear_tf=spec.sublinear_tf, stop_words=spec.stop_words, min_df=min_df,
                                 max_df=spec.max_df, ngram_range=(1, spec.ngram_max), dtype=np.float32)
    return vectorizer.fit_transform(texts).tocsr()


def tfidf_cosine(texts: list[str], spec: TfidfSpec) -> np.ndarray:
    matrix = tfidf_matrix(texts, spec)
    return (matrix @ matrix.T).toarray().astype(np.float32)


@dataclass(frozen=True)
class Bm25Spec:
    """BM25 variant (bm25s, ``method='lucene'``; bm25s tokeniser: lower-cased ``\\b\\w\\w+\\b``, English stopwords)."""

    k1: float = 1.2
    b: float = 0.75

    @property
    def label(self) -> str:
        return f"bm25(k1={self.k1},b={self.b})"


def bm25_weights(texts: list[str], spec: Bm25Spec) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(document-term BM25 weights, binary query-term matrix) over one corpus, both n x vocabulary."""
    try:
        import bm25s
    except ImportError:
        raise SystemExit("the BM25 rows need bm25s, which is not a project dependency: pip install bm25s==0.3.16 "
                         "(pure Python; numpy and scipy only)") from None

    tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
    retriever = bm25s.BM25(k1=spec.k1, b=spec.b, method="lucene")
    retriever.index(tokens, show_progress=False)
    scores = retriever.scores
    vocab = len(scores["indptr"]) - 1  # bm25s indexes the tokens that occur (no empty-string token)
    weights = sp.csc_matrix((scores["data"], scores["indices"], scores["indptr"]),
                            shape=(scores["num_docs"], vocab)).tocsr()
    unique = [np.fromiter({i for i in t if i < vocab}, dtype=np.int64) for t in tokens.ids]
    rows = np.repeat(np.arange(len(unique)), [len(u) for u in unique])
    cols = np.concatenate(unique) if len(rows) else np.zeros(0, dtype=np.int64)
    query = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(texts), vocab))
    return weights, query


def bm25_symmetric(texts: list[str], spec: Bm25Spec) -> np.ndarray:
    """0.5 * (s(a,b)/s(a,a) + s(b,a)/s(b,b)) with s(q,d) = BM25 of document d for q's unique terms."""
    weights, query = bm25_weights(texts, spec)
    raw = (query @ weights.T).toarray().astype(np.float32)
    self_score = np.maximum(np.diag(raw).copy(), 1e-6)
    normed = raw / self_score[:, None]
    return (0.5 * (normed + normed.T)).astype(np.float32)


# Entities: capitalised runs of words, no model. Sentence-initial capitals and title-cased / all-caps segments
# (AG News headlines, Reuters titles) are the traps.
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'’&\-]*(?:\.[A-Za-z0-9]+)*")
_SENTENCE_END = re.compile(r"[.!?:;\"“”()\n]")
_UPPER = re.compile(r"[A-Z]")
_LETTER = re.compile(r"[A-Za-z]")
_HONORIFICS = {"mr", "mrs", "ms", "dr", "sir", "lord", "lady", "prof", "st", "rev", "gen", "sen", "rep", "gov"}
_CONNECTORS = {"of", "de", "la", "du", "von", "van", "al"}


def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    days = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
    months = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
              "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
              "nov", "dec"}
    extra = {"said", "says", "reuter", "reuters", "ap", "afp"}
    return frozenset(ENGLISH_STOP_WORDS | days | months | _HONORIFICS | extra)


STOPWORDS = _stopwords()


def _title_cased(words: list[str]) -> bool:
    content = [w for w in words if w.lower() not in STOPWORDS]
    return len(words) >= 3 and len(content) >= 2 and sum(w[0].isupper() for w in content) / len(content) > 0.75


def _tokens(text: str) -> list[tuple[str, bool, bool]]:
    """(word, sentence-initial, joined to the previous word by whitespace only) for each word of ``text``."""
    out = []
    last_end = None
    for m in _WORD.finditer(text):
        word = m.group(0)
        if word.endswith(("'s", "’s")):
            word = word[:-2]
        word = word.rstrip("'’-")
        if not word:
            continue
        gap = text[last_end:m.start()] if last_end is not None else ""
        initial = last_end is None or bool(_SENTENCE_END.search(gap))
        out.append((word, initial, last_end is not None and gap.strip() == ""))
        last_end = m.end()
    return out


def _segment_entities(text: str, tokens: list[tuple[str, bool, bool]], lowercase_seen: dict[str, int],
                      midcap_seen: dict[str, int]) -> list[str]:
    if not tokens:
        return []
    letters = len(_LETTER.findall(text)) or 1
    if len(_UPPER.findall(text)) / letters > 0.5 or _title_cased([w for w, _, _ in tokens]):
        return []  # a title-cased or all-caps segment: capitals carry no signal
    found: list[str] = []
    run: list[str] = []
    run_initial = False

    def close() -> None:
        nonlocal run
        while run and run[-1] in _CONNECTORS:
            run.pop()
        if run_initial:
            while run and run[0].lower() in STOPWORDS:
                run.pop(0)
            if len(run) == 1:
                key = run[0].lower()
                # "Shares", "However", Reuters' "Shr": capitalised only where a sentence starts.
                if midcap_seen.get(key, 0) == 0 or lowercase_seen.get(key, 0) > midcap_seen.get(key, 0):
                    run = []
        while run and run[0].lower() in _HONORIFICS:
            run.pop(0)
        if len(run) == 1 and run[0].lower() in STOPWORDS:
            run = []
        if run:
            found.append(" ".join(run).lower())
        run = []

    for word, initial, joined in tokens:
        if run and (initial or not joined):
            close()
        if word[0].isupper():
            if not run:
                run_initial = initial
            run.append(word)
        elif run and word in _CONNECTORS:
            run.append(word)
        else:
            close()
    close()
    return [e for e in found if len(e) > 1]


def entities(segments: list[tuple[str, str, str]]) -> list[list[str]]:
    """Entity strings (lower-cased, repeats kept) of each article's title, abstract and body."""
    lowercase_seen: dict[str, int] = {}
    midcap_seen: dict[str, int] = {}
    tokenised = [[_tokens(part) for part in parts] for parts in segments]
    for parts in tokenised:
        for tokens in parts:
            for word, initial, _ in tokens:
                if word[0].isupper():
                    if not initial:
                        key = word.lower()
                        midcap_seen[key] = midcap_seen.get(key, 0) + 1
                else:
                    lowercase_seen[word] = lowercase_seen.get(word, 0) + 1
    return [[e for part, tokens in zip(parts, toks)
             for e in _segment_entities(part, tokens, lowercase_seen, midcap_seen)]
            for parts, toks in zip(segments, tokenised)]


def entity_jaccard(found: list[list[str]]) -> np.ndarray:
    """Jaccard of entity sets (0 where both are empty)."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, ents in enumerate(found):
        for e in set(ents):
            rows.append(i)
            cols.append(vocab.setdefault(e, len(vocab)))
    binary = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(found), max(len(vocab), 1)))
    inter = (binary @ binary.T).toarray()
    sizes = np.asarray(binary.sum(axis=1)).ravel()
    union = sizes[:, None] + sizes[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0).astype(np.float32)


def entity_tfidf(found: list[list[str]]) -> np.ndarray:
    """Cosine of sublinear TF-IDF vectors over entities (rare shared names weigh more)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not any(found):
        return np.zeros((len(found), len(found)), dtype=np.float32)
    matrix = TfidfVectorizer(analyzer=lambda x: x, sublinear_tf=True, dtype=np.float32).fit_transform(found)
    return (matrix @ matrix.T).toarray().astype(np.float32)


def top_m(scores: np.ndarray, m: int, include_self: bool) -> np.ndarray:
    """Row-wise indices of the m best scores (self first when included), unordered beyond that."""
    work = scores.copy()
    np.fill_diagonal(work, np.inf if include_self else -np.inf)
    return np.argpartition(-work, min(m, len(work) - 1) - 1, axis=1)[:, :m]


def shared_neighbours(base: np.ndarray, m: int, cand: np.ndarray | None = None) -> np.ndarray:
    """|N_m(a) & N_m(b)| / m, N_m = the article and its m-1 best neighbours under ``base`` (only among its
    candidates when ``cand`` is given, as a build would compute it)."""
    n = len(base)
    if cand is not None:
        masked = np.full_like(base, -np.inf)
        rows = np.arange(n)[:, None]
        masked[rows, np.where(cand >= 0, cand, rows)] = base[rows, np.where(cand >= 0, cand, rows)]
        base = masked
    idx = top_m(base, min(m, n), include_self=True)
    member = sp.csr_matrix((np.ones(idx.size, dtype=np.float32), (np.repeat(np.arange(n), idx.shape[1]), idx.ravel())),
                           shape=(n, n))
    return ((member @ member.T).toarray() / m).astype(np.float32)


def rocchio(vectors: np.ndarray, r: int, beta: float) -> np.ndarray:
    """Cosine of v' = normalise(v + beta * mean of v's r best dense neighbours), for both articles."""
    cosine = vectors @ vectors.T
    idx = top_m(cosine, min(r, len(vectors) - 1), include_self=False)
    expanded = vectors + beta * vectors[idx].mean(axis=1)
    expanded /= np.linalg.norm(expanded, axis=1, keepdims=True)
    return (expanded @ expanded.T).astype(np.float32)


# ----------------------------------------------------------------------------------------------- evaluation

def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random half (tune) and the rest (held out), as sorted index arrays."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def candidate_lists(dense: np.ndarray, lexical: np.ndarray, depth: int = CANDIDATES) -> np.ndarray:
    """Per article: the union of its dense top-``depth`` and lexical top-``depth`` (never itself), -1 padded."""
    a, b = top_m(dense, depth, include_self=False), top_m(lexical, depth, include_self=False)
    unions = [np.union1d(x, y) for x, y in zip(a, b)]
    out = np.full((len(unions), max(len(u) for u in unions)), -1, dtype=np.int64)
    for i, u in enumerate(unions):
        out[i, : len(u)] = u
    return out


def gather(signals: dict[str, np.ndarray], cand: np.ndarray) -> np.ndarray:
    """(n, C, S) signal values of each article's candidates; NaN at padding."""
    rows = np.arange(len(cand))[:, None]
    safe = np.where(cand >= 0, cand, 0)
    stack = np.stack([s[rows, safe] for s in signals.values()], axis=-1).astype(np.float64)
    stack[cand < 0] = np.nan
    return stack


def zscore_per_query(features: np.ndarray) -> np.ndarray:
    """Each signal standardised over each article's candidate list (NaN padding kept)."""
    mean = np.nanmean(features, axis=1, keepdims=True)
    std = np.nanstd(features, axis=1, keepdims=True)
    return (features - mean) / np.where(std > 0, std, 1)


def rank_features(signals: dict[str, np.ndarray], cand: np.ndarray) -> np.ndarray:
    """(n, C, S) 1-based rank of each candidate in the article's full list under each signal (self excluded)."""
    out = []
    rows = np.arange(len(cand))[:, None]
    safe = np.where(cand >= 0, cand, 0)
    for s in signals.values():
        work = s.copy()
        np.fill_diagonal(work, -np.inf)
        ranks = np.empty_like(work, dtype=np.int32)
        order = np.argsort(-work, axis=1, kind="stable")
        np.put_along_axis(ranks, order, np.arange(1, work.shape[1] + 1, dtype=np.int32)[None, :].repeat(len(work), 0),
                          axis=1)
        out.append(ranks[rows, safe])
    return np.stack(out, axis=-1).astype(np.float64)


def top_lists(score: np.ndarray, cand: np.ndarray, depth: int) -> np.ndarray:
    """(n, depth) article indices by descending fused score (stable on candidate order), -1 where short."""
    score = np.where(np.isnan(score), -np.inf, score)
    order = np.argsort(-score, axis=1, kind="stable")[:, :depth]
    picked = np.take_along_axis(cand, order, axis=1)
    return np.where(np.take_along_axis(score, order, axis=1) > -np.inf, picked, -1)


def precision_at_k(lists: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = K) -> float:
    """Mean share of the first k slots with the query's label (short lists penalised)."""
    top = lists[queries, :k]
    hit = (top >= 0) & (labels[np.where(top >= 0, top, 0)] == labels[queries][:, None])
    return float(hit.sum(axis=1).mean() / k)


def collapsed_precision(lists: np.ndarray, labels: np.ndarray, groups: np.ndarray, queries: np.ndarray,
                        k: int = K) -> float:
    """P@k after dropping exact copies of the article's own body and keeping one of each duplicate body."""
    total = 0
    for q in queries:
        seen = {groups[q]}
        kept = 0
        for item in lists[q]:
            if item < 0 or kept == k:
                break
            if groups[item] in seen:
                continue
            seen.add(groups[item])
            kept += 1
            total += labels[item] == labels[q]
    return total / (len(queries) * k)


# ------------------------------------------------------------------------------------------------- fusions

TFIDF_SPECS = [TfidfSpec(), TfidfSpec(min_df=2), TfidfSpec(min_df=2, ngram_max=2), TfidfSpec(sublinear_tf=False),
               TfidfSpec(stop_words=None, max_df=0.3)]
BM25_SPECS = [Bm25Spec(k1, b) for k1 in (0.9, 1.2, 1.5, 2.0) for b in (0.4, 0.75, 1.0)]
TFIDF = TfidfSpec(min_df=2)
BM25 = Bm25Spec(1.2, 0.75)
SNN_SMALL, SNN_LARGE = 10, 100
ROCCHIO_R, ROCCHIO_BETA = 10, 1.0
SIGNALS = ("cos", "tfidf", "bm25", "ent", "ent_idf", "snn10", "snn100", "rocchio")
# Coordinate ascent: each weight (cos fixed at 1 unless rocchio replaces it) is line-searched over STEPS.
STEPS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def signal_matrices(corpus: Corpus) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every signal of ``SIGNALS`` over one corpus, and the candidate lists (dense top-50 | TF-IDF top-50).

    SNN neighbour sets are each article's best candidates under cos + tfidf (what a build has at hand).
    """
    cos = dense_cosine(corpus.vectors)
    tfidf = tfidf_cosine(corpus.lex_texts, TFIDF)
    cand = candidate_lists(cos, tfidf, min(CANDIDATES, len(cos) - 1))
    found = entities(corpus.segments)
    base = cos + tfidf
    return {"cos": cos, "tfidf": tfidf, "bm25": bm25_symmetric(corpus.lex_texts, BM25),
            "ent": entity_jaccard(found), "ent_idf": entity_tfidf(found),
            "snn10": shared_neighbours(base, min(SNN_SMALL, len(cos)), cand),
            "snn100": shared_neighbours(base, min(SNN_LARGE, len(cos)), cand),
            "rocchio": rocchio(corpus.vectors, min(ROCCHIO_R, len(cos) - 1), ROCCHIO_BETA)}, cand


def weight_vector(weights: dict[str, float]) -> np.ndarray:
    return np.array([weights.get(s, 0.0) for s in SIGNALS])


def describe(weights: dict[str, float]) -> str:
    terms = [f"{w:g}*{s}" for s, w in weights.items() if w]
    return " + ".join(terms) if terms else "0"


def coordinate_ascent(objective, start: dict[str, float], free: tuple[str, ...],
                      rounds: int = 3) -> tuple[dict[str, float], float]:
    """Maximise ``objective(weights)`` one weight at a time over ``STEPS`` (ties keep the smaller weight)."""
    best = dict(start)
    best_score = objective(best)
    for _ in range(rounds):
        improved = False
        for name in free:
            for step in STEPS:
                trial = {**best, name: step}
                if not any(trial.values()):
                    continue
                score = objective(trial)
                if score > best_score + 1e-9:
                    best, best_score, improved = trial, score, True
        if not improved:
            break
    return {k: v for k, v in best.items() if v}, best_score


@dataclass
class ListData:
    """A list corpus prepared for fusion search."""

    corpus: Corpus
    signals: dict[str, np.ndarray]
    cand: np.ndarray
    features: np.ndarray
    ranks: np.ndarray
    queries: np.ndarray          # evaluable queries (label shared by >= 2 articles)
    tune: np.ndarray
    held: np.ndarray

    def fast_p5(self, score: np.ndarray, queries: np.ndarray) -> float:
        """P@5 of fused candidate scores over ``queries`` (unordered top 5: precision does not need the order)."""
        score = np.where(np.isnan(score[queries]), -np.inf, score[queries])
        top = np.argpartition(-score, K - 1, axis=1)[:, :K]
        picked = np.take_along_axis(self.cand[queries], top, axis=1)
        ok = np.take_along_axis(score, top, axis=1) > -np.inf
        labels = self.corpus.labels
        return float((ok & (labels[np.where(picked >= 0, picked, 0)] == labels[queries][:, None])).sum()
                     / (len(queries) * K))

    def weighted(self, weights: dict[str, float]) -> np.ndarray:
        return self.features @ weight_vector(weights)

    def rrf(self, members: tuple[str, ...], k: int = 60) -> np.ndarray:
        return (1.0 / (k + self.ranks)) @ np.array([1.0 if s in members else 0.0 for s in SIGNALS])

    def report(self, score: np.ndarray) -> dict[str, float]:
        c = self.corpus
        lists = top_lists(score, self.cand, 20)
        return {"tune": precision_at_k(lists, c.labels, self.tune),
                "held_out": precision_at_k(lists, c.labels, self.held),
                "all": precision_at_k(lists, c.labels, self.queries),
                "collapsed_held_out": collapsed_precision(lists, c.labels, c.dup_group, self.held),
                "collapsed_all": collapsed_precision(lists, c.labels, c.dup_group, self.queries)}

    def report_raw(self, name: str) -> dict[str, float]:
        """A signal's own neighbours over the whole corpus, without the candidate step."""
        c = self.corpus
        lists = raw_neighbour_lists(self.signals[name])
        return {"tune": precision_at_k(lists, c.labels, self.tune),
                "held_out": precision_at_k(lists, c.labels, self.held),
                "all": precision_at_k(lists, c.labels, self.queries),
                "collapsed_held_out": collapsed_precision(lists, c.labels, c.dup_group, self.held),
                "collapsed_all": collapsed_precision(lists, c.labels, c.dup_group, self.queries)}

    def tune_weights(self, start: dict[str, float] | None = None) -> tuple[dict[str, float], float]:
        objective = lambda w: self.fast_p5(self.weighted(w), self.tune)  # noqa: E731
        results = [coordinate_ascent(objective, start or {"cos": 1.0}, SIGNALS[1:]),
                   coordinate_ascent(objective, {"rocchio": 1.0}, ("cos",) + SIGNALS[1:-1])]
        return max(results, key=lambda r: r[1])


def prepare_lists(corpus: Corpus, signals: dict[str, np.ndarray], cand: np.ndarray, seed: int) -> ListData:
    labels = corpus.labels
    counts = pd.Series(labels).value_counts()
    queries = np.flatnonzero(pd.Series(labels).map(counts).to_numpy() >= 2)
    tune_pos, held_pos = halves(len(queries), seed)
    return ListData(corpus, signals, cand, gather(signals, cand), rank_features(signals, cand), queries,
                    queries[tune_pos], queries[held_pos])


def raw_neighbour_lists(signal: np.ndarray, depth: int = 20) -> np.ndarray:
    """A signal's own top list over the whole corpus (no candidate step; exact ties broken by a hair of noise-free
    catalogue order)."""
    work = signal.astype(np.float64)
    np.fill_diagonal(work, -np.inf)
    return np.argsort(-work, axis=1, kind="stable")[:, :depth]


@dataclass
class PairData:
    """SemEval pairs prepared for fusion search."""

    corpus: Corpus
    features: np.ndarray         # (pairs, S)
    tune: np.ndarray
    held: np.ndarray

    def r(self, weights: dict[str, float] | np.ndarray, which: np.ndarray | None = None) -> float:
        w = weights if isinstance(weights, np.ndarray) else weight_vector(weights)
        score = self.features @ w
        which = np.arange(len(score)) if which is None else which
        if np.std(score[which]) == 0:
            return float("nan")
        return float(np.corrcoef(score[which], self.corpus.gold[which])[0, 1])

    def report(self, weights: dict[str, float] | np.ndarray) -> dict[str, float]:
        return {"tune": self.r(weights, self.tune), "held_out": self.r(weights, self.held), "all": self.r(weights)}

    def tune_weights(self) -> tuple[dict[str, float], float]:
        objective = lambda w: self.r(w, self.tune)  # noqa: E731
        results = [coordinate_ascent(objective, {"cos": 1.0}, SIGNALS[1:]),
                   coordinate_ascent(objective, {"rocchio": 1.0}, ("cos",) + SIGNALS[1:-1])]
        return max(results, key=lambda r: r[1])

    def ols(self) -> np.ndarray:
        """Least-squares weights on the tune half (the Pearson-optimal linear mix there)."""
        x = np.column_stack([self.features[self.tune], np.ones(len(self.tune))])
        coef, *_ = np.linalg.lstsq(x, self.corpus.gold[self.tune], rcond=None)
        return coef[:-1]


def prepare_pairs(corpus: Corpus, signals: dict[str, np.ndarray], seed: int) -> PairData:
    a, b = corpus.pairs[:, 0], corpus.pairs[:, 1]
    features = np.stack([signals[s][a, b] for s in SIGNALS], axis=-1).astype(np.float64)
    tune, held = halves(len(a), seed)
    return PairData(corpus, features, tune, held)


# ------------------------------------------------------------------------------------ joint (one-formula) tuning

PAIR_SIGNALS = ("tfidf", "bm25", "ent", "ent_idf")   # pair scores that need no neighbourhood
LIST_GUARDS = ("demo", "reuters", "ag_news")          # tune halves that must not lose P@5 against cos alone


def tune_list_formula(lists: dict[str, ListData], target: str = "bbc",
                      guards: tuple[str, ...] = LIST_GUARDS) -> tuple[dict[str, float], float]:
    """One list formula: best ``target`` tune P@5 with no loss on the guards' tune halves (penalty 10 per point)."""
    base = {n: d.fast_p5(d.weighted({"cos": 1.0}), d.tune) for n, d in lists.items()}

    def objective(weights: dict[str, float]) -> float:
        loss = sum(max(0.0, base[g] - lists[g].fast_p5(lists[g].weighted(weights), lists[g].tune)) for g in guards)
        return lists[target].fast_p5(lists[target].weighted(weights), lists[target].tune) - 10 * loss

    return coordinate_ascent(objective, {"cos": 1.0}, SIGNALS[1:])


def tune_pair_formula(pairs: PairData) -> tuple[dict[str, float], float]:
    """SemEval pair score from cos and the neighbourhood-free pair signals, on the tune half."""
    return coordinate_ascent(lambda w: pairs.r(w, pairs.tune), {"cos": 1.0}, PAIR_SIGNALS)


# ------------------------------------------------------------------------------ SemEval: what to embed

def _chunks(text: str, size: int) -> list[str]:
    words, out, current = text.split(), [], []
    for word in words:
        if current and len(" ".join(current)) + len(word) + 1 > size:
            out.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        out.append(" ".join(current))
    return out or [""]


def semeval_views(corpus: Corpus, seed: int = 0) -> dict[str, object]:
    """Pearson of cos under different embedded texts: title only, title + lead (600 chars), the engine's
    1,500 characters, whole text as a mean of ~600-character chunk vectors, and title vector + text vector."""
    from recommender.catalogue import embedding_text
    from recommender.embedding import EmbeddingCache, embed_cached, make_embedder

    embedder = make_embedder()
    tokenizer = embedder.model.tokenizer
    lengths = np.array([len(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in corpus.lex_texts])
    window = int(embedder.model.max_seq_length)
    cache = EmbeddingCache(CACHE)
    a, b = corpus.pairs[:, 0], corpus.pairs[:, 1]
    out: dict[str, object] = {"articles": len(lengths), "tokens_median": float(np.median(lengths)),
                              "tokens_max": int(lengths.max()), "window": window,
                              "share_over_window": float((lengths > window).mean()),
                              "chars_max": int(max(len(t) for t in corpus.lex_texts))}
    try:
        tune, held = halves(len(a), seed)
        tfidf = tfidf_cosine(corpus.lex_texts, TFIDF)[a, b]

        def r_of(vectors: np.ndarray) -> dict[str, float]:
            cos = np.einsum("ij,ij->i", vectors[a], vectors[b])
            out_ = {}
            for label, score in (("", cos), (" +0.2*tfidf", cos + 0.2 * tfidf)):
                for part, rows in (("tune", tune), ("held_out", held), ("all", np.arange(len(a)))):
                    out_[part + label] = float(np.corrcoef(score[rows], corpus.gold[rows])[0, 1])
            return out_

        titles = [t for t, _, _ in corpus.segments]
        views = {"title": titles,
                 "title+lead (600 chars)": [embedding_text(t, ab, bd, 600) for t, ab, bd in corpus.segments],
                 "engine text (1,500 chars)": corpus.embed_texts}
        vecs = {name: embed_cached(embedder, texts, cache)[0] for name, texts in views.items()}
        pieces = [_chunks(text, 600) for text in corpus.lex_texts]
        flat = [p for ps in pieces for p in ps]
        flat_vecs = embed_cached(embedder, flat, cache)[0]
        means, start = [], 0
        for ps in pieces:
            v = flat_vecs[start:start + len(ps)].mean(axis=0)
            means.append(v / np.linalg.norm(v))
            start += len(ps)
        vecs["whole text, mean of 600-char chunks"] = np.array(means)
        both = vecs["title"] + vecs["engine text (1,500 chars)"]
        vecs["title vector + engine-text vector"] = both / np.linalg.norm(both, axis=1, keepdims=True)
        out["pearson"] = {name: r_of(v) for name, v in vecs.items()}
        out["chunks_per_article_mean"] = float(np.mean([len(p) for p in pieces]))
    finally:
        cache.close()
    return out


# ------------------------------------------------------------------------------------------- cost at scale

def cost_at_scale(data: Path, target: int, queries: int = 300, seed: int = 0) -> dict[str, object]:
    """Per-article cost of the extra build work at ``target`` articles.

    Real texts (BBC + Reuters + AG News, ~18.5k) give the TF-IDF / BM25 fit and entity extraction cost per
    article; the fitted matrices are tiled up to ``target`` rows (same posting-list lengths per term as a
    ``target``-article corpus with this vocabulary mix) to time the lexical top-50 search and the fused rescoring
    of ~100 candidates for ``queries`` sampled articles. The dense top-50 is the engine's existing neighbour
    precompute and is not counted.
    """
    ds = _datasets_module()
    frames = [ds.load_bbc(data).articles, ds.load_reuters(data).articles, ds.load_ag_news(data).articles]
    articles = _catalogue(pd.concat(frames, ignore_index=True))
    texts, segments = article_texts(articles), _segments(articles)
    n = len(texts)
    if target < n:  # the sampled queries are real rows, looked up in the ``target`` synthetic vectors
        raise SystemExit(f"--cost-articles {target} is below the {n} real articles it tiles: use at least {n} (or 0)")
    out: dict[str, object] = {"real_articles": n, "target_articles": target}
    start = time.perf_counter()
    matrix = tfidf_matrix(texts, TFIDF)
    out["tfidf_fit_s_per_article"] = (time.perf_counter() - start) / n
    start = time.perf_counter()
    weights, query = bm25_weights(texts, BM25)
    out["bm25_fit_s_per_article"] = (time.perf_counter() - start) / n
    start = time.perf_counter()
    found = entities(segments)
    out["entities_s_per_article"] = (time.perf_counter() - start) / n
    reps = -(-target // n)
    tiled = sp.vstack([matrix] * reps).tocsr()[:target]
    tiled_bm25 = sp.vstack([weights] * reps).tocsr()[:target]
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(queries, n), replace=False)
    start = time.perf_counter()
    lexical_top = []
    for chunk in np.array_split(sample, max(1, len(sample) // 100)):
        scores = (matrix[chunk] @ tiled.T).toarray()
        lexical_top.append(np.argpartition(-scores, CANDIDATES, axis=1)[:, :CANDIDATES + 1])
    out["tfidf_top50_s_per_article"] = (time.perf_counter() - start) / len(sample)
    start = time.perf_counter()
    for chunk in np.array_split(sample, max(1, len(sample) // 100)):
        scores = (query[chunk] @ tiled_bm25.T).toarray()
        np.argpartition(-scores, CANDIDATES, axis=1)[:, :CANDIDATES + 1]
    out["bm25_top50_s_per_article"] = (time.perf_counter() - start) / len(sample)
    # Rescoring: ~100 candidates per article (50 dense, unseen here: random rows, + the 50 lexical), all signals.
    vectors = rng.standard_normal((target, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entity_sets = [frozenset(f) for f in found]
    top = np.concatenate(lexical_top)
    neighbour_sets = {}
    start = time.perf_counter()
    for q, lex in zip(sample, top):
        cand = np.union1d(lex, rng.choice(target, size=CANDIDATES, replace=False))
        cand = cand[cand != q]
        cos = vectors[cand] @ vectors[q]
        tf = np.asarray((tiled[cand] @ matrix[q].T).todense()).ravel()
        bm = np.asarray((tiled_bm25[cand] @ query[q].T).todense()).ravel()
        mine = entity_sets[q]
        ent = np.array([len(mine & entity_sets[c % n]) / max(1, len(mine | entity_sets[c % n])) for c in cand])
        neighbour_sets[q] = set(cand[np.argsort(-(cos + tf))[:SNN_LARGE - 1]].tolist()) | {int(q)}
        mine_nb = neighbour_sets[q]
        snn = np.array([len(mine_nb & neighbour_sets.get(int(c), mine_nb)) for c in cand]) / SNN_LARGE
        _ = cos + 0.5 * tf + 0.2 * bm + 0.2 * snn + ent
    out["rescore_s_per_article"] = (time.perf_counter() - start) / len(sample)
    # Candidates are dense top-50 | TF-IDF top-50: the BM25 top-50 search is timed for reference, not counted.
    per_article = (out["tfidf_fit_s_per_article"] + out["bm25_fit_s_per_article"] + out["entities_s_per_article"]
                   + out["tfidf_top50_s_per_article"] + out["rescore_s_per_article"])
    out["total_s_per_article"] = per_article
    out["total_s_at_target_one_core"] = per_article * target
    out["memory_note"] = (f"tiled TF-IDF {tiled.nnz:,} non-zeros ({tiled.data.nbytes + tiled.indices.nbytes:,} bytes), "
                          f"BM25 {tiled_bm25.nnz:,}")
    return out


# --------------------------------------------------------------------------------------------------- main

RRF_SETS = [("cos", "tfidf"), ("cos", "tfidf", "bm25"), ("cos", "tfidf", "snn100"), ("cos", "tfidf", "snn10"),
            ("cos", "tfidf", "ent"), ("cos", "tfidf", "bm25", "snn100", "rocchio")]


def _fmt(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def print_table(title: str, rows: list[dict[str, object]], columns: list[str]) -> None:
    print(f"\n## {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(_fmt(row.get(c)) if isinstance(row.get(c), float) else str(row.get(c, ""))
                                for c in columns) + " |")


def lexical_sweep(sets: dict[str, Corpus], lists: dict[str, ListData], pairs: PairData) -> list[dict[str, object]]:
    """Each TF-IDF / BM25 variant alone: BBC P@5 (its own neighbours, tune/held-out) and SemEval Pearson."""
    rows = []
    bbc, sem = sets["bbc"], sets["semeval"]
    a, b = sem.pairs[:, 0], sem.pairs[:, 1]
    for spec in [*TFIDF_SPECS, *BM25_SPECS]:
        fn = tfidf_cosine if isinstance(spec, TfidfSpec) else bm25_symmetric
        lists_ = raw_neighbour_lists(fn(bbc.lex_texts, spec))
        score = fn(sem.lex_texts, spec)[a, b]
        rows.append({"variant": spec.label, "bbc_tune": precision_at_k(lists_, bbc.labels, lists["bbc"].tune),
                     "bbc_held_out": precision_at_k(lists_, bbc.labels, lists["bbc"].held),
                     "semeval_tune": float(np.corrcoef(score[pairs.tune], sem.gold[pairs.tune])[0, 1]),
                     "semeval_held_out": float(np.corrcoef(score[pairs.held], sem.gold[pairs.held])[0, 1])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--seed", type=int, default=0, help="seed of the Reuters/AG slices and of the tune halves")
    parser.add_argument("--slice", type=int, default=2000, help="Reuters and AG News articles (seeded sample)")
    parser.add_argument("--cost-articles", type=int, default=100_000, help="0 skips the cost measurement")
    parser.add_argument("--no-sweep", action="store_true", help="skip the TF-IDF / BM25 variant sweep")
    parser.add_argument("--no-views", action="store_true", help="skip the SemEval embedded-text comparison")
    parser.add_argument("--out", default=str(OUT / "relevance_fusion.json"))
    args = parser.parse_args()
    data = Path(args.data)
    started = time.time()
    result: dict[str, object] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                                 "config": {"tfidf": TFIDF.label, "bm25": BM25.label, "candidates": CANDIDATES,
                                            "snn_m": [SNN_SMALL, SNN_LARGE], "rocchio": [ROCCHIO_R, ROCCHIO_BETA],
                                            "seed": args.seed, "slice": args.slice}}
    try:
        import bm25s
        result["config"]["bm25s_version"] = bm25s.__version__
    except ImportError as exc:  # pragma: no cover
        raise SystemExit("pip install bm25s (pure Python; 0.3.16 was used)") from exc

    sets = load_all(data, args.slice, args.seed)
    result["embedded_now"] = embed_all(sets)
    lists: dict[str, ListData] = {}
    pairs: PairData | None = None
    for name, corpus in sets.items():
        signals, cand = signal_matrices(corpus)
        if corpus.pairs is not None:
            pairs = prepare_pairs(corpus, signals, args.seed)
        else:
            lists[name] = prepare_lists(corpus, signals, cand, args.seed)
    result["datasets"] = {n: {"articles": len(c.ids), "queries": int(len(lists[n].queries)) if n in lists else None,
                              "pairs": int(len(c.pairs)) if c.pairs is not None else None,
                              "candidates_mean": float((lists[n].cand >= 0).sum(axis=1).mean()) if n in lists else None,
                              "duplicate_body_articles": int(len(c.ids) - len(set(c.dup_group)))
                              if c.dup_group is not None else None}
                          for n, c in sets.items()}

    # 1. Each signal alone.
    alone = []
    for name, d in lists.items():
        for s in ("cos", "tfidf"):
            alone.append({"dataset": name, "method": f"{s} (own top-5 over the corpus, no candidate step)",
                          **d.report_raw(s)})
        for s in SIGNALS:
            alone.append({"dataset": name, "method": s, **d.report(d.weighted({s: 1.0}))})
    for s in SIGNALS:
        alone.append({"dataset": "semeval", "method": s, **pairs.report({s: 1.0})})
    result["signals_alone"] = alone

    # 2. Tuned on each dataset's own tune half (the ceiling of a per-site tuning).
    own = []
    for name, d in lists.items():
        weights, _ = d.tune_weights()
        own.append({"dataset": name, "method": "weighted sum, tuned on this dataset", "formula": describe(weights),
                    **d.report(d.weighted(weights))})
        best = max(RRF_SETS, key=lambda m: d.fast_p5(d.rrf(m), d.tune))
        own.append({"dataset": name, "method": "RRF (k=60), member set chosen on tune", "formula": "+".join(best),
                    **d.report(d.rrf(best))})
    weights, _ = pairs.tune_weights()
    own.append({"dataset": "semeval", "method": "weighted sum, tuned on this dataset", "formula": describe(weights),
                **pairs.report(weights)})
    ols = pairs.ols()
    own.append({"dataset": "semeval", "method": "least squares on tune half (all signals)",
                "formula": describe({s: round(float(w / ols[0]), 3) for s, w in zip(SIGNALS, ols)}),
                **pairs.report(ols)})
    result["tuned_per_dataset"] = own

    # 3. One list formula for every site and one pair formula.
    list_w, _ = tune_list_formula(lists)
    pair_w, _ = tune_pair_formula(pairs)
    final = []
    for name, d in lists.items():
        final.append({"dataset": name, "method": "before: cos alone", **d.report(d.weighted({"cos": 1.0}))})
        final.append({"dataset": name, "method": "after: list formula", "formula": describe(list_w),
                      **d.report(d.weighted(list_w))})
    pruned = {k: v for k, v in list_w.items() if v >= 0.2}
    for name, d in lists.items():
        final.append({"dataset": name, "method": "after: pruned list formula (terms < 0.2 dropped, not re-tuned)",
                      "formula": describe(pruned), **d.report(d.weighted(pruned))})
    final.append({"dataset": "semeval", "method": "before: cos alone", **pairs.report({"cos": 1.0})})
    final.append({"dataset": "semeval", "method": "list formula as pair score (SNN over the 322 SemEval articles)",
                  "formula": describe(list_w), **pairs.report(list_w)})
    final.append({"dataset": "semeval", "method": "after: pair formula (no neighbourhood signals)",
                  "formula": describe(pair_w), **pairs.report(pair_w)})
    result["final"] = final
    result["list_formula"], result["list_formula_pruned"], result["pair_formula"] = list_w, pruned, pair_w

    if not args.no_sweep:
        result["lexical_sweep"] = lexical_sweep(sets, lists, pairs)
    if not args.no_views:
        result["semeval_views"] = semeval_views(sets["semeval"], args.seed)
    if args.cost_articles:
        result["cost"] = cost_at_scale(data, args.cost_articles, seed=args.seed)
    result["wall_s"] = time.time() - started

    columns = ["dataset", "method", "tune", "held_out", "all", "collapsed_held_out", "collapsed_all"]
    print_table("Each signal alone (P@5 of related lists among the candidates; SemEval: Pearson)", alone, columns)
    print_table("Tuned on each dataset's own tune half", own, columns + ["formula"])
    print_table("Before / after: one list formula (tuned on BBC tune half, no loss allowed on the demo, Reuters "
                "and AG News tune halves) and one pair formula (SemEval tune half)", final, columns + ["formula"])
    if "lexical_sweep" in result:
        print_table("Lexical variants alone", result["lexical_sweep"],
                    ["variant", "bbc_tune", "bbc_held_out", "semeval_tune", "semeval_held_out"])
    if "semeval_views" in result:
        views = result["semeval_views"]
        print(f"\n## SemEval en-en: what to embed ({views['articles']} articles, median {views['tokens_median']:.0f} "
              f"tokens, max {views['tokens_max']}, {views['share_over_window']:.1%} over the {views['window']}-token "
              f"window, longest text {views['chars_max']} characters)\n")
        print_table("SemEval Pearson by embedded text", [{"text": k, **v} for k, v in views["pearson"].items()],
                    ["text", "tune", "held_out", "all", "tune +0.2*tfidf", "held_out +0.2*tfidf", "all +0.2*tfidf"])
    if "cost" in result:
        print("\n## Cost per article at", f"{args.cost_articles:,}", "articles (one core)\n")
        for key, value in result["cost"].items():
            print(f"- {key}: {value * 1000:.3f} ms" if key.endswith("per_article") else f"- {key}: {value}")
    print(f"\nlist formula: {describe(list_w)}\npruned list formula: {describe(pruned)}\n"
          f"pair formula: {describe(pair_w)}\nwall {result['wall_s']:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
