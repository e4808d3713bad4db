"""Every file and column of a build directory, named once (model2vec's ``Layout``): writer, reader and rebuild
share these names, and the names of older builds are mapped here so those builds still load."""

from __future__ import annotations

# manifest.json is written after the data files and its digest last: a directory with both is a complete build.
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"   # sha256 of manifest.json's bytes (builds of format 2 on)
ARTICLES = "articles.parquet"      # one row per indexed article, in row order (columns below)
IDS = "ids.npy"                    # (n,) str: article id of each row (row = FAISS id)
VECTORS = "vectors.npy"            # (n, d) float32 unit vectors
INDEX = "vectors.faiss"            # the FAISS index over VECTORS
# (rows_total,) int64: the article position of each row of INDEX, -1 for a tombstone (a removed or changed
# article left in an incrementally updated HNSW graph). Approximate builds only; an exact build's row = position.
INDEX_POSITIONS = "index_positions.npy"
RELATED_ROWS = "related_rows.npy"      # (n, k) int32: each row's related rows, best first, -1 padding
RELATED_SCORES = "related_scores.npy"  # (n, k) float32: their relatedness (hybrid score, not a cosine)
VIEWS = "views.parquet"            # page-view events the build was given (article_id, timestamp, count)
RELATED_STATE = "related_state.npz"    # what the next rebuild's related stage reuses (build/related_tables.py)

# Builds written before the related table was named for what it holds stored it as the "neighbour" table.
LEGACY_NAMES = {RELATED_ROWS: "neighbours.npy", RELATED_SCORES: "neighbour_scores.npy"}
DATA_FILES = (ARTICLES, IDS, VECTORS, INDEX, RELATED_ROWS, RELATED_SCORES, VIEWS)

# Columns of ARTICLES that queries read.
TABLE_COLUMNS = ("id", "title", "section", "url", "published_at", "language", "tags", "author", "embargo_until")
# Copy group and story of each article (build/stories via recommender.stories); builds without them regroup at load.
STORY_COLUMNS = ("copy_group", "story_id")
# sha256 of each article's embedded text (the next rebuild diffs against it) and of its lexical text (title +
# abstract + whole body: the related stage's incremental update diffs both).
TEXT_HASH_COLUMN = "text_sha256"
LEXICAL_HASH_COLUMN = "lexical_sha256"
VIEW_COLUMNS = ("article_id", "timestamp", "count")
