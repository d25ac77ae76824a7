"""`python -m pipeline.cli demo`: materialize every concept folder end to end and print a summary.

This is what `make demo` runs. It uses the real Dagster instance in $DAGSTER_HOME (default
`./.dagster`, SQLite), so the runs and their metadata show up in `make dev` afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The summary table is the demo's output; Dagster's own step log (stack traces included) stays in
# the instance and the UI (make dev): the console shows one line per failed asset, nothing raw.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def ensure_dagster_home() -> Path:
    """Use $DAGSTER_HOME, or the project-local `.dagster/` seeded with the repo's dagster.yaml."""
    configured = os.environ.get("DAGSTER_HOME")
    home = Path(configured or ROOT / ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    source = ROOT / "dagster.yaml"
    # A team's own DAGSTER_HOME keeps its own dagster.yaml (e.g. PostgreSQL); only seed a missing one
    # or refresh the project-local copy.
    project_home = (ROOT / ".dagster").resolve()
    if not target.exists() or (home == project_home and target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    warn_if_data_dir_changed(home)
    return home


def warn_if_data_dir_changed(home: Path, out=None) -> None:
    """Say loudly when this instance's partitions came from another data folder than this run's."""
    from . import settings

    previous = settings.record_data_dir(home)
    if previous is None:
        return
    bar = "!" * 100
    print(f"{bar}\nWARNING: the Dagster instance in {home} was last used with KILN_DATA_DIR={previous},\n"
          f"         now KILN_DATA_DIR={settings.data_dir()}.\n"
          f"         The new_concept_art sensor retires every partition whose folder is not in\n"
          f"         {settings.concepts_dir()} (their published exports stay). To keep the old ones, stop now\n"
          f"         and run with KILN_DATA_DIR={previous}, or give this data folder its own DAGSTER_HOME.\n{bar}",
          file=out or sys.stderr, flush=True)


def init_instance() -> None:
    """Create the instance's storage once, so the webserver and daemon of `make dev` do not race to."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        instance.get_runs(limit=1)


def _failures(result) -> list[tuple[str, str]]:
    """(stage, one-line reason) for each failed step or failed check of a run."""
    found = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            if getattr(data, "user_failure_data", None) and data.user_failure_data.description:
                found.append((event.step_key, data.user_failure_data.description))
            elif getattr(data, "error", None):
                # not a Kiln failure (Dagster's own, e.g. bad run config): its last line, no trace
                found.append((event.step_key, (data.error.message.strip().splitlines() or ["failed"])[-1]))
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                found.append((f"check {evaluation.check_name}", evaluation.description or "failed"))
    return found


# What a run found already made, by the metadata flag each stage reports.
REUSE_FLAGS = (("generated_model", "reused_previous_generation", "generation"),
               ("lod_chain", "reused_previous_chain", "LODs"),
               ("engine_export", "already_published", "export"))


def reused_stages(result) -> list[str]:
    """What a run of one asset reused instead of making again: "generation", "LODs", "export"."""
    flags = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        flags[materialization.asset_key.to_user_string()] = {k: v.value for k, v in materialization.metadata.items()}
    return [label for stage, flag, label in REUSE_FLAGS if flags.get(stage, {}).get(flag) is True]


def reuse_text(reused: list[str], success: bool) -> str:
    if not success:
        return "-"
    if not reused:
        return "nothing (all new)"
    return ", ".join(reused)


def print_next_steps(export_uri: str, out=None) -> None:
    """Where to look after the demo: the gallery, its 3D viewer, and the Dagster UI."""
    out = out or sys.stdout
    port = os.environ.get("PORT", "3000")
    local = not export_uri.startswith("s3://")
    gallery = str(Path(export_uri) / "index.html") if local else f"{export_uri.rstrip('/')}/index.html"
    print("\nWhere to look next:", file=out)
    print(f"  gallery       {gallery}" + ("  (open it in a browser)" if local else ""), file=out)
    if local:
        print("  3D viewer     make gallery, then http://127.0.0.1:8000/ (each card opens its asset in the viewer)",
              file=out)
    print(f"  Dagster UI    make dev, then http://127.0.0.1:{port}/asset-groups (asset graph), "
          f"http://127.0.0.1:{port}/runs (these runs, with every step's log)", file=out)


def _failure_message(result) -> str:
    return "; ".join(message for _, message in _failures(result)) or "run failed (see the Dagster UI for details)"


def print_failure_summary(failures: dict[str, tuple[str, str]], out=None) -> None:
    """The table that ends the demo: each asset that did not export, the stage, and why (one line)."""
    out = out or sys.stdout
    if not failures:
        return
    rows = []
    for asset_id, (stage, message) in failures.items():
        why = message.removeprefix(f"asset {asset_id}: ").removeprefix(f"{stage}: ")
        rows.append([asset_id, stage, why])
    headers = ["failed asset", "stage", "why (fix this, then run make demo again)"]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(2)]
    print(f"\n{len(rows)} asset(s) not exported:", file=out)
    for row in [headers, ["-" * widths[0], "-" * widths[1], "-" * len(headers[2])], *rows]:
        print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}", file=out)


def demo(args: argparse.Namespace) -> int:
    ensure_dagster_home()
    from dagster import DagsterInstance

    from . import concepts, settings
    from .definitions import defs
    from .export.publish import open_target, read_latest

    concepts_dir = settings.concepts_dir()
    found, skipped = concepts.scan(concepts_dir)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    summary: dict[str, tuple[str, str]] = {name: ("folder (skipped)", reason) for name, reason in skipped}
    if not found:
        print_failure_summary(summary)
        print(f"no concept folders in {concepts_dir}", file=sys.stderr)
        return 1
    instance = DagsterInstance.get()
    existing = set(instance.get_dynamic_partitions("game_assets"))
    new = [f.asset_id for f in found if f.asset_id not in existing]
    if new:
        instance.add_dynamic_partitions("game_assets", new)

    job = defs.resolve_job_def("kiln_asset_job")
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    reused: dict[str, str] = {}  # what each asset's run found already made
    cpu: dict[str, float] = {}  # CPU seconds per asset: the cost of a run, whatever else the machine does
    started = time.monotonic()
    for folder in found:
        t0, c0 = time.monotonic(), time.process_time()
        print(f"materializing {folder.asset_id} ...", end=" ", flush=True)
        result = job.execute_in_process(partition_key=folder.asset_id, instance=instance, raise_on_error=False,
                                        tags={"kiln/source": "demo"}, run_config=QUIET)
        timings[folder.asset_id] = time.monotonic() - t0
        cpu[folder.asset_id] = time.process_time() - c0
        reused[folder.asset_id] = reuse_text(reused_stages(result), result.success)
        if not result.success:
            failures[folder.asset_id] = _failure_message(result)
            found_failures = _failures(result)
            summary[folder.asset_id] = found_failures[0] if found_failures else ("run", failures[folder.asset_id])
        print(f"{'ok' if result.success else 'FAILED'} ({timings[folder.asset_id]:.1f} s)", flush=True)
    catalog_result = defs.resolve_job_def("kiln_catalog_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET)
    if not catalog_result.success:
        failures["catalog"] = _failure_message(catalog_result)
        summary["catalog"] = ("catalog", failures["catalog"])

    target = open_target(settings.export_uri())
    rows = []
    for folder in found:
        latest = None if folder.asset_id in failures else read_latest(target, folder.asset_id)
        if latest is None:
            rows.append([folder.asset_id, "-", "FAILED (reason below)" if folder.asset_id in failures else "-",
                         "-", "not published"])
            continue
        tris = " / ".join(str(lv["triangles"]) for lv in latest["lods"])
        first = next(iter(latest["exports"].values()))
        version_dir = first["path"].split("/")[:2]
        rows.append([folder.asset_id, latest["provider"], tris, reused.get(folder.asset_id, "-"),
                     target.uri_for("/".join(version_dir)) + "/"])
    headers = ["asset", "provider", "triangles per LOD", "reused", "export"]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    print()
    for row in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"\n{len(found) - len([f for f in found if f.asset_id in failures])}/{len(found)} assets exported "
          f"in {time.monotonic() - started:.1f} s; catalog: {Path(settings.export_uri()) / 'catalog.json'}")
    sys.stdout.flush()  # the one-line failures, then the table: in this order on a terminal or a pipe
    for name, message in failures.items():
        print(f"FAILED {name}: {message}", file=sys.stderr)
    sys.stderr.flush()
    print_failure_summary(summary)
    print_next_steps(settings.export_uri())
    if args.json:
        print(json.dumps({"failures": failures, "skipped": dict(skipped), "timings_s": timings, "cpu_s": cpu,
                          "reused": reused}))
    return 1 if failures else 0


class Progress:
    """`done/total (rate/s, time left)` lines on stderr, at most one per `every_s` and a last one,
    and only once a job has run longer than `every_s` (short jobs stay quiet)."""

    def __init__(self, what: str, every_s: float = 2.0, out=None, clock=time.monotonic):
        self.what, self.every_s, self.out, self.clock = what, every_s, out, clock
        self.started = self.last = clock()

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.last < self.every_s and (done < total or now - self.started < self.every_s):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else float("inf")
        print(f"{self.what} {done}/{total} ({rate:.0f}/s, {_duration(left)} left)", file=self.out or sys.stderr,
              flush=True)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# Partitions are added in batches: one call per batch, progress between them.
REGISTER_BATCH = 500


def register(args: argparse.Namespace) -> int:
    """Every concept folder becomes a `game_assets` partition; nothing runs."""
    ensure_dagster_home()
    from dagster import DagsterInstance

    from . import concepts, settings

    concepts_dir = settings.concepts_dir()
    if not concepts_dir.is_dir():
        print(f"no concepts folder at {concepts_dir} (set KILN_DATA_DIR)", file=sys.stderr)
        return 1
    started = time.monotonic()
    found, skipped = concepts.scan(concepts_dir, progress=Progress("scanned folders", args.progress_s))
    with DagsterInstance.get() as instance:
        existing = set(instance.get_dynamic_partitions("game_assets"))
        new = [f.asset_id for f in found if f.asset_id not in existing]
        progress = Progress("registered partitions", args.progress_s)
        for start in range(0, len(new), REGISTER_BATCH):
            instance.add_dynamic_partitions("game_assets", new[start:start + REGISTER_BATCH])
            progress(min(start + REGISTER_BATCH, len(new)), len(new))
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    orphans = concepts.retirable(existing, found, skipped, concepts_dir)
    if orphans:
        print(f"{len(orphans)} registered partition(s) have no folder in {concepts_dir} (the new_concept_art "
              f"sensor retires them): {', '.join(orphans[:10])}{' ...' if len(orphans) > 10 else ''}")
    print(f"registered {len(new)} new partition(s), {len(found) - len(new)} already registered, {len(skipped)} "
          f"folder(s) skipped, in {time.monotonic() - started:.1f} s; nothing was run. Run them with a "
          "backfill (make dev, then Materialize all partitions of game_assets); the run queue starts a few "
          "at a time.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="materialize every concept folder end to end and print a summary")
    p_demo.add_argument("--json", action="store_true", help="also print failures and timings as JSON")
    p_demo.set_defaults(func=demo)
    p_register = sub.add_parser("register", help="add every concept folder as a game_assets partition, run nothing")
    p_register.add_argument("--progress-s", type=float, default=2.0,
                            help="seconds between progress lines (default 2; only for runs longer than that)")
    p_register.set_defaults(func=register)
    sub.add_parser("home", help="prepare $DAGSTER_HOME (dagster.yaml, storage) and print it").set_defaults(
        func=lambda _a: print(ensure_dagster_home()) or init_instance() or 0)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
