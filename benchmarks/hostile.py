"""Hostile-input sweeps of issue 14, on a fresh demo build (not in the test suite: minutes of CPU).

- ``fuzz``: schemathesis generates at least ``--requests`` requests over every operation of the OpenAPI
  document, schema-valid and schema-breaking, with the write token (writes included); counts by status, 0 5xx
  expected.
- ``bitflip``: every bit of the build's ``manifest.json`` and ``manifest.sha256`` flipped, one at a time, then the
  build loaded as the service loads it; each outcome is "refused" (IndexFormatError naming the problem),
  "traceback" (any other exception) or "accepted" (it loaded). Expected: 0 tracebacks and 0 accepted. With
  ``--resealed`` each flipped manifest also gets a matching digest (a deliberate edit by someone who recomputes
  it): then the schema checks are what stands, and accepted edits are listed by field.

    python benchmarks/hostile.py fuzz --requests 10000 --out benchmarks/out/hostile-fuzz.json
    python benchmarks/hostile.py bitflip --out benchmarks/out/hostile-bitflip.json [--resealed]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender.build import build  # noqa: E402
from recommender.catalogue.demo import demo_catalogue  # noqa: E402
from recommender.embedding import make_embedder  # noqa: E402
from recommender.errors import IndexFormatError  # noqa: E402
from recommender.query import Recommender  # noqa: E402
from recommender.storage.versions import IndexStore  # noqa: E402

TOKEN = "hostile-token"
ORIGIN = "https://news.example"


def demo_build(work: Path, cache: Path | None) -> Path:
    """The demo corpus built and published under ``work``; returns the indexes root."""
    articles, views = demo_catalogue()
    root = work / "indexes"
    build(articles, root, views_source=views, cache_path=cache or work / "cache.sqlite")
    return root


def fuzz(args: argparse.Namespace, work: Path) -> dict:
    """At least ``args.requests`` generated requests over every operation; statuses counted."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as seed_of
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    from recommender.service.app import create_app
    from recommender.service.settings import ServiceSettings

    root = demo_build(work, args.cache)
    embedder = make_embedder()
    app = create_app(ServiceSettings(index=root / "current", write_token=TOKEN, reload_poll_seconds=0,
                                     warm_model=False, cors_origins=[ORIGIN], click_burst=1_000_000,
                                     click_rate_per_minute=1e6), embedder=embedder)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    per_run = max(1, -(-args.requests // (2 * len(operations))))
    statuses: Counter = Counter()
    server_errors: list[str] = []
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {TOKEN}", "Origin": ORIGIN}  # the click route takes the allowed site

    def runner(operation, mode, seed):  # noqa: ANN001, ANN202 - schemathesis objects
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=per_run, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @seed_of(seed)
        def run(case) -> None:  # noqa: ANN001
            response = case.call(headers=headers)
            statuses[(operation.method.upper(), operation.path, response.status_code)] += 1
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                     f"{response.text[:200]}")

        return run

    rounds = 0
    while sum(statuses.values()) < args.requests:  # hypothesis stops early on small input spaces: more rounds
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for operation in operations:
                try:
                    runner(operation, mode, rounds)()
                except Unsatisfiable:
                    pass  # routes without input have no schema-breaking case
        rounds += 1
    total = sum(statuses.values())
    by_status = Counter()
    for (_, _, status), n in statuses.items():
        by_status[status] += n
    return {"requests": total, "operations": len(operations), "per_operation_and_mode": per_run, "rounds": rounds,
            "seconds": round(time.perf_counter() - started, 1), "by_status": dict(sorted(by_status.items())),
            "server_errors": len(server_errors), "first_server_errors": server_errors[:10],
            "by_operation": {f"{m} {p}": {str(s): n for (m2, p2, s), n in statuses.items() if (m2, p2) == (m, p)}
                             for (m, p) in sorted({(m, p) for m, p, _ in statuses})}}


def load_outcome(build_dir: Path, embedder: object) -> tuple[str, str]:
    """("refused" | "traceback" | "accepted", detail) of loading a build as the service does (checksums, and the
    model identity against the service's embedder)."""
    try:
        Recommender.load(build_dir, verify=True, embedder=embedder)  # type: ignore[arg-type]
    except IndexFormatError as exc:
        return "refused", str(exc).split(":")[-2][-60:] if ":" in str(exc) else str(exc)[:60]
    except Exception as exc:  # noqa: BLE001 - what the sweep looks for
        return "traceback", f"{type(exc).__name__}: {exc}"[:200]
    return "accepted", ""


def bitflip(args: argparse.Namespace, work: Path) -> dict:
    """Every bit of manifest.json (and manifest.sha256) flipped once; outcomes counted."""
    root = demo_build(work, args.cache)
    embedder = make_embedder()
    source = IndexStore(root).current()
    target = work / "flipped"
    shutil.copytree(source, target)
    for file in target.iterdir():
        file.chmod(0o644)
    original = (source / "manifest.json").read_bytes()
    digest = (source / "manifest.sha256").read_bytes()
    outcomes: Counter = Counter()
    tracebacks: list[str] = []
    accepted: list[str] = []
    changed_fields: Counter = Counter()
    parsed = json.loads(original)
    started = time.perf_counter()
    files = [("manifest.json", original)] + ([] if args.resealed else [("manifest.sha256", digest)])
    for name, data in files:
        for offset in range(len(data)):
            for bit in range(8):
                flipped = bytearray(data)
                flipped[offset] ^= 1 << bit
                (target / name).write_bytes(bytes(flipped))
                if args.resealed:
                    (target / "manifest.sha256").write_text(hashlib.sha256(bytes(flipped)).hexdigest() + "\n")
                outcome, detail = load_outcome(target, embedder)
                outcomes[(name, outcome)] += 1
                if outcome == "traceback":
                    tracebacks.append(f"{name}[{offset}] bit {bit}: {detail}")
                elif outcome == "accepted":
                    field = _changed_field(parsed, bytes(flipped)) if name == "manifest.json" else name
                    changed_fields[field] += 1
                    if field != "(whitespace only)":
                        accepted.append(f"{name}[{offset}] bit {bit}: {field}")
        (target / name).write_bytes(data)
        (target / "manifest.sha256").write_bytes(digest)
    return {"mode": "resealed (digest recomputed)" if args.resealed else "bit rot (digest kept)",
            "flips": sum(outcomes.values()), "seconds": round(time.perf_counter() - started, 1),
            "outcomes": {f"{n} {o}": c for (n, o), c in sorted(outcomes.items())},
            "tracebacks": len(tracebacks), "first_tracebacks": tracebacks[:10],
            "accepted": sum(changed_fields.values()), "accepted_content_changes": len(accepted),
            "accepted_by_field": dict(changed_fields.most_common()), "first_accepted": accepted[:20]}


def _changed_field(original: object, flipped: bytes) -> str:
    """The dotted path of the first value a flipped manifest changes, or "(whitespace only)"."""
    try:
        edited = json.loads(flipped)
    except ValueError:
        return "(not JSON)"

    def walk(a: object, b: object, path: str) -> str | None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    return f"{path}.{key}".lstrip(".") + " (key renamed)"
                found = walk(a[key], b[key], f"{path}.{key}")
                if found:
                    return found
            return None
        return None if a == b and type(a) is type(b) else path.lstrip(".")

    return walk(original, edited, "") or "(whitespace only)"


def main() -> None:
    """Run one sweep and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", choices=["fuzz", "bitflip"])
    parser.add_argument("--requests", type=int, default=10_000, help="fuzz: at least this many requests")
    parser.add_argument("--resealed", action="store_true", help="bitflip: recompute the digest after each flip")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (default: a fresh one)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON (default: print only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-") as folder:
        result = (fuzz if args.sweep == "fuzz" else bitflip)(args, Path(folder))
    result.update(sweep=args.sweep, date=time.strftime("%Y-%m-%d"), python=sys.version.split()[0])
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
