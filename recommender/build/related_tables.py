"""The build's neighbour and related tables, updated from the previous build's state; a from-scratch build is the
same computation with no previous state.

A nightly rebuild where 1% of the archive changed should not redo the whole related stage. Each build therefore
stores, next to its data files, what the next one needs (``related_state.npz``):

- the dense and lexical candidate tables with a margin and a floor per row (``toptable.py``), so unchanged rows
  are merged with scores against the changed articles instead of searched again;
- the TF-IDF model (vocabulary + idf) and matrix: changed articles are transformed with the same model, so the
  unchanged rows' TF-IDF vectors and scores stay valid (the model is refitted from scratch once the articles
  changed since the fit pass ``lexical_refit_fraction`` or it is ``lexical_refit_days`` old, as new names
  and terms enter the vocabulary only at a refit);
- every (article, candidate) pair's cosine, TF-IDF cosine and shared-neighbour count: a pair is recomputed only
  when one of its articles changed or, for the shared-neighbour count, when either article's neighbour set did.

The entity scores (TF-IDF cosine of the articles' tags) are not stored: few and cheap, they are recomputed for
every pair at each build from the current tags, so a tag edit alone reaches the lists and ``entity_weight`` is not
part of the state's identity.

With the exact (Flat) index the result equals a from-scratch computation with the same TF-IDF model, up to the
order among articles with identical scores (exact duplicates): ``tests/test_related_build.py`` checks it against
brute force. Above ``IndexConfig.exact_max_count`` the dense searches are HNSW, approximate in both cases. A state
written with another model, depth or relatedness setting is not used, and crossing ``exact_lexical_max_count``
(every TF-IDF query changes form) refits the lexical part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import scipy.sparse as sp

from ..config import BuildConfig, RelatednessConfig
from ..pairs import pair_cosines, pair_dots
from ..storage.layout import RELATED_STATE
from .fusion import fused_tables, lexical_shard
from .relatedness import (
    LexicalModel,
    candidate_matrix,
    entity_matrix,
    lexical_queries,
    member_matrix,
    pair_entities,
    ranked,
)
from .shards import LocalShards, ShardRunner
from .toptable import TopTable, update

STATE_FILE = RELATED_STATE
STATE_VERSION = 1
Search = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
_T = TypeVar("_T")


@dataclass(frozen=True)
class RelatedState:
    """What a build leaves for the next one's related stage (see the module doc)."""

    meta: dict[str, Any]
    dense: TopTable
    lexical: TopTable | None = None
    model: LexicalModel | None = None
    matrix: sp.csr_matrix | None = None
    candidates: np.ndarray | None = None  # (n, c) int32, -1 padding
    cosines: np.ndarray | None = None     # (n, c) float32
    lexical_scores: np.ndarray | None = None  # (n, c) float32
    shared: np.ndarray | None = None      # (n, c) uint16

    def save(self, directory: Path) -> str:
        """Write ``STATE_FILE`` into ``directory``; returns its name."""
        # Any: a dict[str, ndarray] spread into np.savez is checked against its allow_pickle: bool keyword too
        arrays: dict[str, Any] = {"meta": np.asarray(json.dumps(self.meta)), "dense_rows": self.dense.rows,
                                  "dense_scores": self.dense.scores, "dense_floor": self.dense.floor}
        if self.lexical is not None and self.model is not None and self.matrix is not None:
            arrays.update(lexical_rows=self.lexical.rows, lexical_scores_table=self.lexical.scores,
                          lexical_floor=self.lexical.floor, terms=self.model.terms, idf=self.model.idf,
                          matrix_data=self.matrix.data, matrix_indices=self.matrix.indices,
                          matrix_indptr=self.matrix.indptr, matrix_shape=np.asarray(self.matrix.shape),
                          candidates=self.candidates, cosines=self.cosines, lexical_scores=self.lexical_scores,
                          shared=self.shared)
        with open(directory / STATE_FILE, "wb") as handle:
            np.savez(handle, **arrays)
        return STATE_FILE

    @classmethod
    def load(cls, directory: Path) -> RelatedState | None:
        """The state stored in a build, or None when it has none (builds from before it) or another version."""
        path = directory / STATE_FILE
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta.get("version") != STATE_VERSION:
                return None
            dense = TopTable(stored["dense_rows"], stored["dense_scores"], stored["dense_floor"])
            if "terms" not in stored:
                return cls(meta, dense)
            matrix = sp.csr_matrix((stored["matrix_data"], stored["matrix_indices"], stored["matrix_indptr"]),
                                   shape=tuple(stored["matrix_shape"]))
            return cls(meta, dense, TopTable(stored["lexical_rows"], stored["lexical_scores_table"],
                                             stored["lexical_floor"]),
                       LexicalModel(stored["terms"], stored["idf"]), matrix, stored["candidates"],
                       stored["cosines"], stored["lexical_scores"], stored["shared"])


@dataclass(frozen=True)
class Previous:
    """The previous build's state and how its rows map onto this build's.

    Attributes:
        state: its ``RelatedState``.
        new_to_old: (n,) the old row of each row (same article id), -1 for new articles.
        old_to_new: (n_old,) the new row of each old row, -1 for deleted articles.
        fresh: (n,) rows that are new or whose embedded or lexical text changed.
    """

    state: RelatedState
    new_to_old: np.ndarray
    old_to_new: np.ndarray
    fresh: np.ndarray

    @classmethod
    def match(cls, state: RelatedState, old_ids: Sequence[str], old_keys: Sequence[str], ids: Sequence[str],
              keys: Sequence[str]) -> Previous:
        """Map a previous build (``old_ids`` with text keys ``old_keys``) onto this one's ``ids`` and ``keys``
        (a key: the embedded and the lexical text's hashes joined)."""
        old_rows = {a: r for r, a in enumerate(old_ids)}
        new_to_old = np.fromiter((old_rows.get(a, -1) for a in ids), dtype=np.int64, count=len(ids))
        old_to_new = np.full(len(old_ids), -1, dtype=np.int64)
        present = new_to_old >= 0
        old_to_new[new_to_old[present]] = np.flatnonzero(present)
        old_key_array = np.asarray(old_keys, dtype=object)
        same = present.copy()
        same[present] = old_key_array[new_to_old[present]] == np.asarray(keys, dtype=object)[present]
        return cls(state, new_to_old, old_to_new, ~same)

    @property
    def entry_map(self) -> np.ndarray:
        """Old row -> new row, -1 for deleted and fresh articles (their old scores are void)."""
        mapped = self.old_to_new.copy()
        alive = mapped >= 0
        mapped[np.flatnonzero(alive)[self.fresh[mapped[alive]]]] = -1
        return mapped

    @property
    def deleted(self) -> int:
        """Articles of the previous build that are gone."""
        return int((self.old_to_new < 0).sum())


@dataclass
class RelatedTables:
    """The related stage's output: the build's related table, the state for the next build and what it did."""

    related: tuple[np.ndarray, np.ndarray]
    state: RelatedState
    stats: dict[str, Any] = field(default_factory=dict)


def usable(state: RelatedState | None, model: str, depth: int, config: RelatednessConfig) -> bool:
    """Whether a previous build's state can seed this build (same model, table depth and relatedness scoring)."""
    return (state is not None and state.meta.get("model") == model and state.meta.get("depth") == depth
            and state.meta.get("relatedness") == config.state_settings())


def dense_table(search: Search, vectors: np.ndarray, depth: int, needed: int, previous: Previous | None
                ) -> tuple[TopTable, int]:
    """The dense candidate table (FAISS neighbours, ``depth`` per row); returns it and the rows searched."""
    n = len(vectors)
    if previous is None:
        return TopTable.from_search(*search(np.arange(n)), depth), n
    fresh_vectors = vectors[np.flatnonzero(previous.fresh)]
    return update(previous.state.dense, previous.new_to_old, previous.entry_map, previous.fresh,
                  lambda rows: vectors[rows] @ fresh_vectors.T, search, needed)


def related_tables(vectors: np.ndarray, texts: Sequence[str], dense: TopTable, k: int, config: BuildConfig,
                   meta: dict[str, Any], previous: Previous | None, now: datetime | None = None,
                   tags: Sequence[Sequence[str]] | None = None, shards: ShardRunner | None = None
                   ) -> RelatedTables:
    """The related table (fused, or the dense head when fusion is off) and the state to store with the build.

    Args:
        vectors: (n, d) unit vectors; texts: the lexical texts (title + abstract + body).
        dense: this build's dense table (``dense_table``).
        k: related entries per row.
        meta: the state's identity (``model``, ``depth``, ``relatedness``), stored with it.
        previous: the previous build's usable state, mapped onto this build; None computes from scratch.
        tags: each article's tags / entities (the entity signal); None or all empty leaves it out.
        shards: where the query shards of the candidate searches and the fusion run (default in-process).
    """
    settings = config.relatedness
    now = now or datetime.now(UTC)
    meta = {**meta, "version": STATE_VERSION}
    n = len(vectors)
    if not settings.enabled or n < 2:
        return RelatedTables(dense.head(k), RelatedState(meta, dense), {"fused": False})
    old = previous.state if previous is not None and previous.state.model is not None else None
    stats: dict[str, Any] = {"fused": True}
    fresh = previous.fresh if previous is not None else np.ones(n, dtype=bool)
    # Every query's form changes when the catalogue crosses exact_lexical_max_count: then nothing old is valid.
    query_mode = _query_mode(n, settings)
    meta["lexical_query_mode"] = query_mode
    # (states written before the mode was recorded used the same rule on their own article count)
    refit = (old is None or previous is None
             or old.meta.get("lexical_query_mode", _query_mode(len(old.dense.rows), settings)) != query_mode
             or _refit_due(old.meta, int(fresh.sum()) + previous.deleted, settings, now))
    if refit:
        model, matrix = LexicalModel.fit(texts)
        meta.update(lexical_fitted_at=now.isoformat(), lexical_articles_at_fit=n, lexical_changed_since_fit=0)
    else:
        old, previous = _stored(old, "previous related state"), _stored(previous, "previous row mapping")
        model, matrix = _stored(old.model, "TF-IDF model"), _updated_matrix(old, previous, texts)
        meta.update({key: old.meta[key] for key in ("lexical_fitted_at", "lexical_articles_at_fit")},
                    lexical_changed_since_fit=old.meta["lexical_changed_since_fit"] + int(fresh.sum())
                    + previous.deleted)
    stats["lexical"] = "refit" if refit else "reused"
    shards = shards or LocalShards()
    queries = lexical_queries(matrix, settings)
    transposed = matrix.T.tocsr()
    depth = settings.lexical_candidates + config.neighbour_margin
    # Entity scores are few and cheap: computed for every pair from this build's tags (and their idf).
    entity_rows = entity_matrix(tags) if tags is not None else None
    tagged = int((np.diff(entity_rows.indptr) > 0).sum()) if entity_rows is not None else 0
    if old is None:  # nothing to reuse: the whole stage by query shard (``fusion``)
        fused = fused_tables(shards, vectors, matrix, queries, transposed, dense.head(k)[0], k, depth, settings,
                             entity_rows)
        stats.update(lexical_rows_searched=n, **fused.stats, tagged_articles=tagged)
        state = RelatedState(meta, dense, fused.lexical, model, matrix, fused.candidates, fused.cosines,
                             fused.lexical_scores, fused.shared)
        return RelatedTables(fused.related, state, stats)
    search_state = {"queries": queries, "transposed": transposed, "k": min(depth, n - 1)}

    def search(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = shards.map(lexical_shard, search_state, rows)
        if not parts:
            return lexical_shard(search_state, np.asarray(rows, dtype=np.int64))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    if refit:
        lexical, searched = TopTable.from_search(*search(np.arange(n)), depth), n
    else:
        old, previous = _stored(old, "previous related state"), _stored(previous, "previous row mapping")
        fresh_columns = matrix[np.flatnonzero(fresh)].T.tocsr()
        lexical, searched = update(_stored(old.lexical, "lexical table"), previous.new_to_old, previous.entry_map,
                                   fresh, lambda rows: (queries[rows] @ fresh_columns).toarray(), search,
                                   settings.lexical_candidates, positive_only=True)
    stats["lexical_rows_searched"] = searched
    candidates = candidate_matrix(dense.head(k)[0], lexical.head(settings.lexical_candidates)[0])
    cosines, lexical_scores, shared, pair_stats = _pair_values(vectors, matrix, candidates, settings, old,
                                                               previous, refit)
    stats.update(pair_stats, tagged_articles=tagged)
    state = RelatedState(meta, dense, lexical, model, matrix, candidates, cosines, lexical_scores, shared)
    return RelatedTables(ranked(candidates, cosines, lexical_scores, shared, k, settings,
                                pair_entities(entity_rows, candidates)), state, stats)


def _query_mode(count: int, settings: RelatednessConfig) -> str:
    """How a catalogue of ``count`` articles queries TF-IDF (``relatedness.lexical_queries``)."""
    return "exact" if count <= settings.exact_lexical_max_count or not settings.lexical_query_terms else "pruned"


def _stored(value: _T | None, what: str) -> _T:
    """``value``, a part of the previous build's state that reusing its lexical part needs (a state with a TF-IDF
    model has them all)."""
    if value is None:
        raise ValueError(f"the previous build's related state has no {what}")
    return value


def _refit_due(meta: dict[str, Any], changed: int, settings: RelatednessConfig, now: datetime) -> bool:
    fitted_at = datetime.fromisoformat(meta["lexical_fitted_at"])
    age_days = (now - fitted_at).total_seconds() / 86_400
    changed_total = meta["lexical_changed_since_fit"] + changed
    return (age_days >= settings.lexical_refit_days
            or changed_total > settings.lexical_refit_fraction * max(meta["lexical_articles_at_fit"], 1))


def _updated_matrix(old: RelatedState, previous: Previous, texts: Sequence[str]) -> sp.csr_matrix:
    """This build's TF-IDF rows: the old rows of unchanged articles, the fresh ones transformed by the old model."""
    fresh_rows = np.flatnonzero(previous.fresh)
    transformed = _stored(old.model, "TF-IDF model").transform([texts[i] for i in fresh_rows.tolist()])
    old_matrix = _stored(old.matrix, "TF-IDF matrix")
    stacked = sp.vstack([old_matrix, transformed], format="csr")
    source = previous.new_to_old.copy()
    source[fresh_rows] = old_matrix.shape[0] + np.arange(len(fresh_rows))
    return stacked[source]


def _pair_values(vectors: np.ndarray, matrix: sp.csr_matrix, candidates: np.ndarray, settings: RelatednessConfig,
                 old: RelatedState | None, previous: Previous | None, refit: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Cosine, TF-IDF cosine and shared-neighbour count of every (row, candidate) pair, reusing the previous
    build's where neither article changed (and, for the count, neither neighbour set)."""
    n = len(candidates)
    rows, cols = np.nonzero(candidates >= 0)
    targets = candidates[rows, cols].astype(np.int64)
    pairs = len(rows)
    cos_flat = np.zeros(pairs, dtype=np.float32)
    lex_flat = np.zeros(pairs, dtype=np.float32)
    shared_flat = np.zeros(pairs, dtype=np.uint16)
    found = np.zeros(pairs, dtype=bool)
    member_changed = np.ones(n, dtype=bool)
    if old is not None:
        previous = _stored(previous, "previous row mapping")
        old_candidates = _stored(old.candidates, "candidates")
        old_pairs = np.nonzero(old_candidates >= 0)  # the old build's pairs, in the order of its flat arrays
        position, found = _old_pairs(old, old_pairs, previous, rows, targets)
        unchanged = found & ~previous.fresh[rows] & ~previous.fresh[targets]
        cos_flat[unchanged] = _stored(old.cosines, "cosines")[old_pairs][position[unchanged]]
        if not refit:
            lex_flat[unchanged] = _stored(old.lexical_scores, "lexical scores")[old_pairs][position[unchanged]]
    else:
        unchanged = found
    lex_reused = unchanged if not refit else np.zeros(pairs, dtype=bool)
    cos_flat[~unchanged] = pair_cosines(vectors, rows[~unchanged], targets[~unchanged])
    lex_flat[~lex_reused] = pair_dots(matrix, rows[~lex_reused], targets[~lex_reused])
    cosines = np.zeros(candidates.shape, dtype=np.float32)
    lexical = np.zeros(candidates.shape, dtype=np.float32)
    cosines[rows, cols], lexical[rows, cols] = cos_flat, lex_flat
    members = member_matrix(candidates, cosines, lexical, settings.snn_size)
    if old is not None:
        # A row can have another neighbour set only if its candidates or one of their scores changed.
        suspect = np.zeros(n, dtype=bool)
        suspect[rows[~unchanged | ~lex_reused]] = True
        previous = _stored(previous, "previous row mapping")
        old_counts = (old_candidates >= 0).sum(axis=1)
        mapped = previous.new_to_old >= 0
        suspect[~mapped] = True
        suspect[mapped] |= old_counts[previous.new_to_old[mapped]] != (candidates[mapped] >= 0).sum(axis=1)
        member_changed = _changed_members(members, old, previous, settings.snn_size, np.flatnonzero(suspect))
        keep = found & ~member_changed[rows] & ~member_changed[targets]
        shared_flat[keep] = _stored(old.shared, "shared-neighbour counts")[old_pairs][position[keep]]
    else:
        keep = np.zeros(pairs, dtype=bool)
    shared_flat[~keep] = np.rint(pair_dots(members, rows[~keep], targets[~keep])).astype(np.uint16)
    shared = np.zeros(candidates.shape, dtype=np.uint16)
    shared[rows, cols] = shared_flat
    stats = {"pairs": pairs, "pair_scores_computed": int((~unchanged).sum()),
             "lexical_scores_computed": int((~lex_reused).sum()), "shared_counts_computed": int((~keep).sum()),
             "neighbour_sets_changed": int(member_changed.sum())}
    return cosines, lexical, shared, stats


def _old_pairs(old: RelatedState, old_pairs: tuple[np.ndarray, ...], previous: Previous, rows: np.ndarray,
               targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (row, target) pair: its position among the old build's non-padding pairs (``old_pairs``), and
    whether it is there."""
    n = len(previous.fresh)
    old_rows, old_cols = old_pairs
    a = previous.old_to_new[old_rows]
    b = previous.old_to_new[_stored(old.candidates, "candidates")[old_rows, old_cols].astype(np.int64)]
    alive = np.flatnonzero((a >= 0) & (b >= 0))
    keys = a[alive] * n + b[alive]
    if len(keys) and bool(np.all(keys[1:] > keys[:-1])):  # the usual night: row order kept, no sort needed
        order, sorted_keys = alive, keys
    else:
        by_key = np.argsort(keys, kind="stable")
        order, sorted_keys = alive[by_key], keys[by_key]
    wanted = rows.astype(np.int64) * n + targets
    at = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
    hit = (sorted_keys[at] == wanted) if len(sorted_keys) else np.zeros(len(wanted), dtype=bool)
    return order[at] if len(sorted_keys) else np.zeros(len(wanted), dtype=np.int64), hit


def _changed_members(members: sp.csr_matrix, old: RelatedState, previous: Previous, size: int,
                     suspects: np.ndarray) -> np.ndarray:
    """Which of the ``suspects`` rows have a shared-neighbour set that differs (by article) from the previous
    build's; new rows always do."""
    n = len(previous.fresh)
    changed = np.zeros(n, dtype=bool)
    new_rows = suspects[previous.new_to_old[suspects] < 0]
    changed[new_rows] = True
    rows = suspects[previous.new_to_old[suspects] >= 0]
    source = previous.new_to_old[rows]
    candidates = _stored(old.candidates, "candidates")
    cosines, lexical_scores = _stored(old.cosines, "cosines"), _stored(old.lexical_scores, "lexical scores")
    before = member_matrix(candidates[source], cosines[source], lexical_scores[source], size, own=source).tocoo()
    a, b = rows[before.row], previous.old_to_new[before.col]
    changed[a[b < 0]] = True  # a member was deleted
    keep = b >= 0
    mapped = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (before.row[keep], b[keep])),
                           shape=(len(rows), n))
    changed[rows] |= (members[rows] != mapped).getnnz(axis=1) > 0
    return changed
