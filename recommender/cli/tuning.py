"""`recommender tune`: fine-tune the embedder on the site's own articles (and clicks), gated against its base."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import app, run, source

EXIT_REFUSED = 3


@app.command()
def tune(
    articles: str = typer.Option(..., "--articles", help="Catalogue, as `recommender build` reads it."),
    out: Path = typer.Option(..., "--out", help="New model directory (must not exist or be empty)."),
    clicks: Path | None = typer.Option(None, "--clicks", help="Click events: article_id + source_id (followed "
                                       "recommendation) and/or user_id (co-reads), CSV/JSONL/Parquet."),
    data: Path | None = typer.Option(None, "--data", envvar="RECOMMENDER_DATA", help="Shared datasets folder with "
                                     "semeval2022-t8 (the gate's SemEval metric; env RECOMMENDER_DATA)."),
    base: str | None = typer.Option(None, "--base", help="Model to tune (default: the packaged MiniLM)."),
    kind: list[str] = typer.Option([], "--kind", help="Pair kinds: story, section, copy, headline, halves, "
                                   "followed, co_read (repeatable; default story + section)."),
    max_pairs: int = typer.Option(2000, "--max-pairs", help="Training pairs kept (seeded sample)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the training pairs."),
    learning_rate: float = typer.Option(5e-5, "--lr", help="Learning rate."),
    batch_size: int = typer.Option(16, "--batch-size", help="Pairs per step (the in-batch negatives)."),
    hard_negatives: bool = typer.Option(False, "--hard-negatives", help="Add base-model neighbours outside the "
                                        "anchor's story/section as hard negatives."),
    precision: str = typer.Option("auto", "--precision", help="auto (fp16 on CUDA, else fp32), fp32, bf16, fp16."),
    tolerance: float = typer.Option(0.01, "--tolerance", help="How far a metric not in --must-beat may fall."),
    must_beat: list[str] = typer.Option([], "--must-beat", help="Gate metrics the tuned model must raise "
                                        "(repeatable; default semeval_en_pearson and site_pairs_recall@10)."),
    min_gain: float = typer.Option(0.0, "--min-gain", help="How much a --must-beat metric must rise to count."),
    semeval_limit: int | None = typer.Option(None, "--semeval-limit", help="Gate on a seeded sample of this many "
                                             "SemEval en-en pairs (default all)."),
    cache: Path | None = typer.Option(None, "--cache", help="Embedding cache for the base model's vectors."),
    seed: int = typer.Option(0, "--seed", help="Split, sampling and training seed."),
) -> None:
    """Fine-tune the embedder on pairs mined from the site; write MODEL_DIR and its gate verdict. Exit codes:
    0 accepted (a build may use it: `recommender build --model MODEL_DIR`), 2 invalid input, 3 refused by the
    gate (the directory is kept, marked refused: a build refuses it unless --allow-refused)."""
    def action() -> None:
        import dataclasses

        from ..tuning import GateSettings, TuneConfig
        from ..tuning import tune as run_tune

        gate = GateSettings(tolerance=tolerance, min_gain=min_gain, semeval_limit=semeval_limit)
        if must_beat:
            gate = dataclasses.replace(gate, must_beat=tuple(must_beat))
        config = TuneConfig(max_pairs=max_pairs, max_steps=max_steps, epochs=epochs, learning_rate=learning_rate,
                            batch_size=batch_size, hard_negatives=hard_negatives, precision=precision, seed=seed,
                            gate=gate)
        if base:
            config = dataclasses.replace(config, base_model=base)
        if kind:
            config = dataclasses.replace(config, kinds=tuple(kind))
        result = run_tune(source(articles), out, config, clicks_source=clicks, data_dir=data, cache_path=cache,
                          on_step=lambda line: typer.echo(line, err=True))
        typer.echo(result.gate.table())
        typer.echo(f"wrote {result.directory} ({result.identity.name}); gate table: "
                   f"{result.directory / 'gate.json'}")
        if not result.gate.accepted:
            typer.echo(f"refused: the tuned model does not beat its base out of sample ({result.gate.reason}); "
                       f"{result.directory} is marked refused and `recommender build --model` will not use it "
                       f"without --allow-refused", err=True)
            raise typer.Exit(EXIT_REFUSED)
        typer.echo(f"accepted: recommender build CATALOGUE --model {result.directory}")
    run(action)
