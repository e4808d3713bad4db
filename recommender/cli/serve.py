"""`recommender serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

from .common import app, run


def _metrics_dir(configured: str | None) -> Path:
    """Where the workers write their metrics, so that one scrape of /metrics answers for all of them
    (prometheus_client's multiprocess mode): the configured directory or a new one of this run, emptied first
    (files of an earlier run would count again)."""
    directory = Path(configured or tempfile.mkdtemp(prefix="recommender-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


@app.command()
def serve(
    index: Path = typer.Option(Path("indexes/current"), "--index", help="The `current` pointer (watched for "
                               "new versions), an indexes root, or one build directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (each loads the index)."),
    views: str = typer.Option("sqlite", "--views", help="View counters: sqlite (next to the index), "
                              "sqlite:///path or redis://host:6379/0 (shared by replicas)."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Origin allowed to call the API (repeatable)."),
    live: str | None = typer.Option(None, "--live", envvar="RECOMMENDER_LIVE", help="One postgresql:// database "
                                    "for the whole live state (delta, takedowns, rules, experiments) that replicas "
                                    "on several machines share; --delta/--takedowns/--rules/--experiments override "
                                    "it store by store."),
    delta: str | None = typer.Option(None, "--delta", envvar="RECOMMENDER_DELTA", help="The live delta (upserted "
                                     "articles) in this postgresql:// database (shared by replicas; default "
                                     "live-delta.sqlite in the indexes root)."),
    takedowns: str | None = typer.Option(None, "--takedowns", envvar="RECOMMENDER_TAKEDOWNS", help="Takedowns in "
                                         "this postgresql:// database (shared by replicas; default "
                                         "takedowns.sqlite in the indexes root)."),
    rules: str | None = typer.Option(None, "--rules", envvar="RECOMMENDER_RULES", help="Editorial rules in this "
                                     "postgresql:// database (shared by replicas; default rules.sqlite in the "
                                     "indexes root)."),
    experiments: str | None = typer.Option(None, "--experiments", envvar="RECOMMENDER_EXPERIMENTS", help="Online "
                                           "experiments in this postgresql:// database (shared by replicas; "
                                           "default experiments.sqlite in the indexes root)."),
    reload_poll_seconds: float = typer.Option(2.0, help="How often `current` is checked for a new version."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    demo_pages: bool = typer.Option(False, "--demo-pages", help="Serve /demo/articles/{id}: each article laid out "
                                    "as a page with the widget (whole bodies: for a demo, not a public API)."),
) -> None:
    """Serve the HTTP API (related, more-like-this, popular, live upserts and events). Writes need
    RECOMMENDER_WRITE_TOKEN in the environment."""
    import os

    def action() -> None:
        import uvicorn

        from ..storage.versions import resolve_build_dir

        resolve_build_dir(index)  # fail here, with the fix, rather than in every worker
        # Workers are separate processes that build their settings from the environment (pydantic-settings).
        os.environ.update({"RECOMMENDER_INDEX": str(index), "RECOMMENDER_VIEWS": views,
                           "RECOMMENDER_DEMO_PAGES": "true" if demo_pages else "false",
                           "RECOMMENDER_CORS_ORIGINS": json.dumps(cors_origin),
                           "RECOMMENDER_RELOAD_POLL_SECONDS": str(reload_poll_seconds)})
        stores = {"RECOMMENDER_DELTA": delta or live, "RECOMMENDER_TAKEDOWNS": takedowns or live,
                  "RECOMMENDER_RULES": rules or live, "RECOMMENDER_EXPERIMENTS": experiments or live}
        os.environ.update({name: value for name, value in stores.items() if value})
        from uvicorn.supervisors import Multiprocess

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir(os.environ.get("PROMETHEUS_MULTIPROC_DIR")))

        # Always under uvicorn's supervisor, one worker included: a worker that dies (a signal, an out-of-memory
        # kill) is started again instead of taking the service down.
        config = uvicorn.Config("recommender.service.app:create_app", factory=True, host=host, port=port,
                                workers=workers, log_level=log_level, access_log=False)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    run(action)
