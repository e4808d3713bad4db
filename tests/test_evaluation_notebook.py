"""notebooks/evaluation.ipynb: committed without outputs, and it runs top to bottom on the shared data."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import CACHE, DATA, REPO, data_path

NOTEBOOK = REPO / "notebooks" / "evaluation.ipynb"


def test_committed_notebook_has_no_outputs():
    """Outputs are stripped in git: no outputs, no execution counts, no reusable definitions."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert not any(line.lstrip().startswith(("def ", "class ")) for cell in code for line in cell.source.splitlines())


@pytest.mark.slow
def test_notebook_executes_on_the_shared_data(tmp_path, monkeypatch, cache_path):
    """Every cell runs (a BBC build is made when none is given); the table, a plot and the side-by-side appear."""
    from nbclient import NotebookClient

    data_path("bbc-news", "bbc_news.csv")
    monkeypatch.setenv("RECOMMENDER_DATA", str(DATA))
    monkeypatch.setenv("RECOMMENDER_TEST_CACHE", str(CACHE))
    monkeypatch.setenv("EVALUATION_QUERIES", "200")
    monkeypatch.delenv("EVALUATION_BUILD", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "semeval en-en" in text and "bbc section" in text and "full_blend" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    frames = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(frames) >= 4  # the sweep choice and one side-by-side table per article
    assert not any(o.output_type == "error" for o in outputs)
