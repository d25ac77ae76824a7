"""A catalog backfill at studio scale on the real scale-out stack (make bench-backfill; prints a table).

    .venv/bin/python bench/backfill_bench.py [--assets 1000] [--workloads offline,vendor] [--workers 1,2]
                                             [--compress 30]

For each workload and worker count, on loopback: PostgreSQL (the instance), Redis (the Celery broker),
SeaweedFS (blob store and export target), the vendor emulators (vendor workload), the Dagster daemon
and webserver on deploy/dagster.celery.yaml, and 1 or 2 Celery workers, each a "machine" with its own
working folder (tests/servers.py, tests/pgserver.py, ... : the same code as `make test-scale`).
N concept folders with distinct art (a seeded perturbation per asset, so no content cache can
dedupe them) are registered with `python -m pipeline.cli register`. One lone asset is backfilled
first (the per-run baseline), then one backfill of all N goes in through GraphQL and is followed to
the end with progress lines (done/total, rate, time left).

Workloads:
- offline: the `local` provider (small images at resolution 96, so reconstruction stays cheap);
- vendor: the six vendor emulators, assets dealt to providers in proportion to their default pool
  limits (pipeline.providers.POOL_LIMITS); each job takes 30-90 s of emulated vendor time divided by
  --compress (the client polls at its default 5 s divided by the same factor). The emulators answer
  every job with the same sample GLB, so normalizing it is done once (a content-addressed record):
  the vendor runs' own CPU is lighter than with real, distinct results.

Figures: wall time, assets/min, the lone run against the mean run inside the backfill (the per-asset
overhead of sharing the stack), peak RSS of the daemon and each worker (process trees), CPU seconds
per asset of every component (what the scaling model extrapolates), database rows and S3 objects
written per asset, and for vendor runs each provider pool's share of time full (sampled from the
instance's concurrency store, cross-checked by the emulators' own record of jobs at once).
Results go to bench/out/backfill-<time>.json. README.md, "Benchmarks", says how to read the table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out"
VENDOR_SECONDS = (30.0, 90.0)  # emulated vendor time per job, before compression
DEFAULT_POLL_S = 5.0  # the HTTP providers' default poll interval (pipeline/providers/http.py)
TARGET_POOL_FULL = 0.90
TARGET_OFFLINE_PER_MIN = 60.0
SAMPLE_S = 0.5
SCALE_TO = 10  # machines, on paper


# -- pure helpers (tests/test_backfill_bench.py) ----------------------------------------------------

def time_full(samples: list[tuple[float, int]], limit: int, start: float, end: float) -> dict[str, float]:
    """Share of [start, end) a pool of `limit` slots was full, and its mean occupancy, from
    (time, slots in use) samples; each sample holds until the next one (the last until `end`)."""
    span = end - start
    if span <= 0 or limit <= 0:
        return {"full_share": 0.0, "mean_busy": 0.0}
    ordered = sorted(samples)
    full = busy = 0.0
    for i, (t, used) in enumerate(ordered):
        t_next = ordered[i + 1][0] if i + 1 < len(ordered) else end
        lo, hi = max(t, start), min(t_next, end)
        if hi > lo:
            full += (hi - lo) * (used >= limit)
            busy += (hi - lo) * min(used, limit) / limit
    return {"full_share": full / span, "mean_busy": busy / span}


def not_full_split(samples: list[tuple[float, int]], waiting: list[tuple[float, int]],
                   queued: list[tuple[float, int]], limit: int, start: float, end: float) -> dict[str, float]:
    """Of [start, end), the share a pool was not full while a run waited at it (the refill is slow),
    while none did but the provider's runs still sat in the run queue (the queue or the workers held
    them back), and while it had no run left to give (its share of the work was dealt)."""
    span = end - start
    if span <= 0 or not len(samples) == len(waiting) == len(queued):
        return {}
    rows = sorted((t, used, w, q) for (t, used), (_, w), (_, q) in zip(samples, waiting, queued))
    out = {"not_full_run_waiting": 0.0, "not_full_runs_queued": 0.0, "not_full_no_work": 0.0}
    for i, (t, used, w, q) in enumerate(rows):
        lo, hi = max(t, start), min(rows[i + 1][0] if i + 1 < len(rows) else end, end)
        if hi > lo and used < limit:
            key = "not_full_run_waiting" if w else "not_full_runs_queued" if q else "not_full_no_work"
            out[key] += (hi - lo) / span
    return out


def longest_refill_wait(trace: list[tuple[float, int, int, int, int]], limit: int) -> tuple[float, float, int]:
    """From a pool's trace (time, in use, waiting unassigned, assigned unclaimed, queued): the
    longest stretch with a slot free while a run waited at the pool, as (start, seconds, the most
    steps Dagster had assigned a slot to that had not claimed it). A refill takes one poll (0.5 s);
    a longer one is a step given the slot that did not take it."""
    best, start, assigned = (0.0, 0.0, 0), None, 0
    for i, (t, used, waiting, unclaimed, _) in enumerate(trace):
        if used < limit and waiting > 0:
            if start is None:
                start, assigned = t, 0
            assigned = max(assigned, unclaimed)
            end = trace[i + 1][0] if i + 1 < len(trace) else t
            if end - start > best[1]:
                best = (start, end - start, assigned)
        else:
            start = None
    return best


def full_while_work(pool: dict) -> float:
    """The pool's full share over the time it had work (the backfill less the time no run was left
    for it): what the scheduling controls, apart from how much work each pool was dealt."""
    with_work = 1.0 - pool.get("not_full_no_work", math.nan)
    return pool["full_share"] / with_work if with_work > 0 else math.nan


def intervals_at_once(intervals: list[tuple[float, float]]) -> list[tuple[float, int]]:
    """(time, how many intervals are open) at every start and end: the vendor's own record of how
    many jobs it ran at once, in the same shape as the pool samples."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    out, level = [], 0
    for t, step in edges:
        level += step
        out.append((t, level))
    return out


@dataclass
class Proc:
    pid: int
    ppid: int
    cpu_s: float  # own + reaped children's user and system time
    rss: int  # bytes


def read_procs() -> dict[int, Proc]:
    """Every process on the machine from /proc (gone-while-reading ones are skipped)."""
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick  # utime stime cutime cstime
        procs[int(entry)] = Proc(int(entry), int(fields[1]), cpu, int(fields[21]) * page)
    return procs


def tree(procs: dict[int, Proc], *roots: int) -> list[Proc]:
    """`roots` and all their live descendants. Their CPU times summed count each finished descendant
    once (in the cutime of whoever reaped it) and each live one once."""
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in procs:
            out.append(procs[pid])
            todo.extend(children.get(pid, []))
    return out


# -- the stack -------------------------------------------------------------------------------------

def concept_folders(data: Path, ids: list[str], provider_of, poll_s: float) -> None:
    """One folder per asset: a small blob drawing with a seeded perturbation (distinct bytes and art);
    vendor assets poll at `poll_s` (the default 5 s, compressed with the vendor time)."""
    import numpy as np
    from PIL import Image

    from tests.test_pipeline import SMALL, draw_blob  # SMALL: cheap offline reconstruction

    for n, asset_id in enumerate(ids):
        folder = data / "concepts" / asset_id
        png = folder / "front.png"
        draw_blob(png, color=(40 + n * 37 % 180, 200 - n * 53 % 160, 60 + n * 29 % 170), size=128)
        rgba = np.asarray(Image.open(png)).copy()
        rng = np.random.default_rng(n)
        opaque = rgba[..., 3] > 0
        rgba[..., :3][opaque] = np.clip(rgba[..., :3][opaque].astype(int)
                                        + rng.integers(-6, 7, (int(opaque.sum()), 3)), 0, 255).astype(np.uint8)
        Image.fromarray(rgba).save(png)
        provider = provider_of(n)
        options = SMALL if provider == "local" else f"[options]\npoll_interval_s = {poll_s:g}\n"
        (folder / "asset.toml").write_text(
            f'category = "small_prop"\nheight_m = 0.4\nprovider = "{provider}"\n' + options)


def vendor_deal() -> list[str]:
    """Providers in proportion to their default pool limits: every pool gets work for its size."""
    from pipeline.providers import POOL_LIMITS, REMOTE_PROVIDERS

    return [p for p in REMOTE_PROVIDERS for _ in range(POOL_LIMITS[p])]


@contextlib.contextmanager
def emulators(compress: float):
    """The six vendor emulators with compressed latency, and the environment that points Kiln at them."""
    from tests.emulators.kit import SECRETS, VENDORS

    low, high = (s / compress for s in VENDOR_SECONDS)
    started = {}
    try:
        for name, vendor in VENDORS.items():
            emu = vendor.start()
            emu.job_seconds = (low, high)
            emu.latency_seed = len(started)
            started[name] = emu
        env = {**SECRETS, **{f"KILN_{n.upper()}_BASE_URL": e.base_url for n, e in started.items()},
               "KILN_SCENARIO_USD_PER_CREDIT": "0.0125", "KILN_GONEURAL_USD_PER_CREDIT": "0.025"}
        yield started, env
    finally:
        for emu in started.values():
            emu.__exit__(None, None, None)


class Sampler(threading.Thread):
    """Every SAMPLE_S: each component's process tree (RSS, CPU) and each provider pool's slots in use."""

    def __init__(self, components: dict[str, tuple[int, ...]], pools: list[str]):
        super().__init__(daemon=True)
        self.components, self.pools = components, pools
        self.peak_rss = {name: 0 for name in components}
        self.cpu = {name: 0.0 for name in components}
        self.pool_samples: dict[str, list[tuple[float, int]]] = {p: [] for p in pools}
        self.waiting: dict[str, list[tuple[float, int]]] = {p: [] for p in pools}  # runs waiting at the pool
        self.queued: dict[str, list[tuple[float, int]]] = {p: [] for p in pools}  # its runs still in the run queue
        # steps Dagster has given a slot to that have not claimed it yet (a slow refill shows here)
        self.assigned: dict[str, list[tuple[float, int]]] = {p: [] for p in pools}
        self.limits: dict[str, int] = {}
        self.stopped = threading.Event()
        self.error: str | None = None

    def snapshot_cpu(self) -> dict[str, float]:
        procs = read_procs()
        return {name: sum(p.cpu_s for p in tree(procs, *pids)) for name, pids in self.components.items()}

    def run(self) -> None:
        import dagster as dg

        instance = dg.DagsterInstance.get() if self.pools else None
        try:
            while not self.stopped.wait(SAMPLE_S):
                procs = read_procs()
                for name, pids in self.components.items():
                    members = tree(procs, *pids)
                    self.peak_rss[name] = max(self.peak_rss[name], sum(p.rss for p in members))
                if instance is not None:
                    now = time.monotonic()
                    for pool, info in instance.event_log_storage.get_concurrency_infos(self.pools).items():
                        self.pool_samples[pool].append((now, info.active_slot_count))
                        self.waiting[pool].append((now, info.pending_step_count))
                        assigned = sum(1 for step in info.pending_steps if step.assigned_timestamp)
                        self.assigned[pool].append((now, assigned - info.active_slot_count))
                        self.queued[pool].append((now, instance.get_runs_count(dg.RunsFilter(
                            statuses=[dg.DagsterRunStatus.QUEUED], tags={"kiln/provider": pool.split("/", 1)[1]}))))
                        if info.slot_count:
                            self.limits[pool] = info.slot_count
        except Exception as exc:  # noqa: BLE001 - a dead sampler is reported, not hidden
            self.error = repr(exc)
        finally:
            if instance is not None:
                instance.dispose()


def db_rows(pg, db: str) -> dict[str, int]:
    tables = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", db).split()
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{t}\"" for t in tables)
    return {name: int(count) for name, count in (line.split("|") for line in pg.psql(query, db).splitlines())}


def db_reads(pg, db: str) -> dict[str, int]:
    """Rows each table handed out so far (sequential scans + index fetches): who keeps the database busy."""
    out = pg.psql("SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables", db)
    return {name: int(count) for name, count in (line.split("|") for line in out.splitlines())}


def db_sessions(pg, db: str) -> int:
    """Connections opened to the database so far (dagster-postgres opens one per storage call outside
    the webserver: NullPool), each a forked PostgreSQL backend."""
    return int(pg.psql(f"SELECT sessions FROM pg_stat_database WHERE datname = '{db}'", "postgres") or 0)


def s3_objects(client, bucket: str, prefix: str) -> tuple[int, int]:
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            count, size = count + 1, size + obj["Size"]
    return count, size


# -- one measurement -------------------------------------------------------------------------------

@dataclass
class Stack:
    pg: object
    redis_url: str
    s3: object
    work: Path


@dataclass
class Result:
    workload: str
    workers: int
    concurrency: int
    assets: int
    figures: dict = field(default_factory=dict)


def backfill(url: str, instance, partitions: list[str], title: str, timeout_s: float,
             progress_every_s: float = 10.0) -> tuple[str, float]:
    """Launch one backfill of the game asset's chain over `partitions`; wait for its end. (id, wall s)"""
    import dagster as dg
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES

    from tests.servers import CHAIN, LAUNCH_BACKFILL, graphql

    started = time.monotonic()
    launched = graphql(url, LAUNCH_BACKFILL, {"p": {
        "title": title, "partitionNames": partitions, "assetSelection": [{"path": [key]} for key in CHAIN],
        # vendor runs share one spend budget per backfill: this one may spend what the emulators charge
        "runConfigData": {"ops": {"generated_model": {"config": {"max_spend_usd": 1.0 * len(partitions) + 10}}}},
    }})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {launched}")
    backfill_id = launched["backfillId"]
    tags = {"dagster/backfill": backfill_id}
    last_print = started
    total = len(partitions)
    while True:
        time.sleep(2.0)
        done = instance.get_runs_count(dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.SUCCESS]))
        failed = instance.get_runs_count(dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.FAILURE,
                                                                              dg.DagsterRunStatus.CANCELED]))
        status = instance.get_backfill(backfill_id).status
        now = time.monotonic()
        if status in BULK_ACTION_TERMINAL_STATUSES:
            return backfill_id, now - started
        if now - last_print >= progress_every_s:
            last_print = now
            rate = done / (now - started) * 60
            left = (total - done - failed) / rate * 60 if rate else float("inf")
            print(f"  {title}: {done}/{total} done, {failed} failed, {rate:.1f} assets/min, "
                  f"{_duration(now - started)} elapsed, {_duration(left)} left", flush=True)
        if now - started > timeout_s:
            raise RuntimeError(f"{title}: not finished after {timeout_s:.0f} s ({done}/{total} done)")


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def run_durations(instance, backfill_id: str) -> dict[str, float]:
    import dagster as dg

    records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    runs = [r for r in records if r.start_time and r.end_time]
    if not runs:
        return {"runs": 0}
    ran = [r.end_time - r.start_time for r in runs]
    queued = [r.start_time - r.create_timestamp.timestamp() for r in runs]
    ok = sum(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    # the run queue's per-provider limits at work: every run tagged, and the most in flight at once
    by_provider: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        by_provider.setdefault(r.dagster_run.tags.get("kiln/provider", "untagged"), []).append(
            (r.start_time, r.end_time))
    most = {name: max(n for _, n in intervals_at_once(spans)) for name, spans in sorted(by_provider.items())}
    return {"runs": len(records), "succeeded": ok, "run_ids": [r.dagster_run.run_id for r in runs], "mean_run_s": sum(ran) / len(ran), "max_run_s": max(ran),
            "first_start": min(r.start_time for r in runs),
            "mean_queued_s": sum(queued) / len(queued), "most_in_flight_by_provider": most}


def run_breakdown(instance, run_id: str) -> dict[str, float]:
    """Where one run's time goes, from its event log: waiting in the run queue (created -> launched),
    the hand-off to a worker (broker, a free worker process, instance and code loading: launched ->
    started), each step, and the rest of the run (events, teardown)."""
    record = instance.get_run_record_by_id(run_id)
    first: dict[str, float] = {}
    steps: dict[str, float] = {}
    started: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else None
        if kind is None:
            continue
        first.setdefault(kind, entry.timestamp)
        if kind == "STEP_START":
            started[entry.step_key] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in started:
            steps[entry.step_key] = entry.timestamp - started[entry.step_key]
    created = record.create_timestamp.timestamp()
    launched = first.get("PIPELINE_STARTING", created)  # the run queue handed it to the launcher
    out = {"queued_s": launched - created, "to worker_s": first.get("PIPELINE_START", launched) - launched}
    end = first.get("PIPELINE_SUCCESS") or first.get("PIPELINE_FAILURE") or 0
    out.update({f"step {k}_s": v for k, v in sorted(steps.items())})
    out["outside steps_s"] = end - first.get("PIPELINE_START", end) - sum(steps.values())
    return out


def mean_breakdown(instance, run_ids: list[str], sample: int = 10) -> dict[str, float]:
    picked = run_ids[:: max(1, len(run_ids) // sample)][:sample]
    rows = [run_breakdown(instance, r) for r in picked]
    keys = sorted({k for row in rows for k in row})
    return {k: sum(row.get(k, 0.0) for row in rows) / len(rows) for k in keys} if rows else {}


def measure(stack: Stack, workload: str, workers: int, concurrency: int, ids: list[str], data: Path,
            args) -> Result:
    import dagster as dg

    from pipeline.providers import POOL_LIMITS
    from tests.servers import celery_home, dagster_processes, start_worker, stop

    result = Result(workload, workers, concurrency, len(ids))
    root = stack.work / f"{workload}-{workers}w"
    db = stack.pg.create_database("kiln_bench")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **stack.pg.env(db), "KILN_CELERY_BROKER": stack.redis_url,
           "KILN_STORE_URI": stack.s3.uri(f"{prefix}/store"), "KILN_EXPORT_URI": stack.s3.uri(f"{prefix}/exports"),
           "KILN_DATA_DIR": str(data), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    # The run queue sized as deploy/dagster.celery.yaml asks: the workers' processes plus one run per
    # worker waiting in the broker, so a process that finishes a run takes the next at once.
    home_options = {"max_concurrent_runs": workers * concurrency + workers}
    env["DAGSTER_HOME"] = str(celery_home(root / "daemon-home", **home_options))
    with contextlib.ExitStack() as cleanup:
        vendor_emus = {}
        if workload == "vendor":
            vendor_emus, vendor_env = cleanup.enter_context(emulators(args.compress))
            env.update(vendor_env)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # this process reads the same instance (the sampler, the progress)
        cleanup.callback(lambda: [os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
                                  for k, v in saved.items()])
        registered = subprocess.run([sys.executable, "-m", "pipeline.cli", "register"], env=env, cwd=ROOT,
                                    capture_output=True, text=True, timeout=900)
        if registered.returncode != 0:
            raise RuntimeError(f"register failed: {registered.stderr[-2000:]}")
        procs = {f"worker-{i + 1}": start_worker(f"bench-{i + 1}", root / f"worker-{i + 1}", env,
                                                  concurrency=concurrency, **home_options)
                 for i in range(workers)}
        for proc in procs.values():
            cleanup.callback(stop, proc)
        instance = cleanup.enter_context(dg.DagsterInstance.get())
        url = cleanup.enter_context(dagster_processes(env, daemon=True, log_dir=root / "logs", code_server=True))
        components = {**{name: (p.pid,) for name, p in procs.items()}, **_service_pids(stack)}
        mine = {p.pid: p for p in read_procs().values() if p.ppid == os.getpid()}
        for pid in mine:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            # the daemon machine's scheduling: the daemon, and the code server its sensors run in
            if "dagster-daemon" in cmd or "code-server" in cmd:
                components["daemon"] = components.get("daemon", ()) + (pid,)
            elif "dagster-webserver" in cmd:
                components["webserver"] = (pid,)
        pools = [f"kiln/{p}" for p in dict.fromkeys(vendor_deal())] if workload == "vendor" else []
        sampler = Sampler(components, pools)
        sampler.start()

        lone_id, lone_wall = backfill(url, instance, [ids[0]], f"{workload} lone run", 900)
        lone = run_durations(instance, lone_id)
        # The stack's CPU when nothing runs (sensors ticking over N folders, daemon loops, monitoring):
        # subtracted so that the per-asset CPU scales with assets, not with how long the bench took.
        idle0, t_idle = sampler.snapshot_cpu(), time.monotonic()
        time.sleep(args.idle_s)
        idle1 = sampler.snapshot_cpu()
        idle_rate = {k: (idle1[k] - idle0[k]) / (time.monotonic() - t_idle) for k in idle1}
        rows0, (objects0, bytes0) = db_rows(stack.pg, db), s3_objects(stack.s3.client(), stack.s3.bucket, prefix)
        cpu0, reads0, sessions0 = sampler.snapshot_cpu(), db_reads(stack.pg, db), db_sessions(stack.pg, db)
        t0 = time.monotonic()
        bf_id, wall = backfill(url, instance, ids[1:], f"{workload} backfill, {workers} worker(s)",
                               args.timeout_s, args.progress_s)
        t1 = time.monotonic()
        cpu1, reads1, sessions1 = sampler.snapshot_cpu(), db_reads(stack.pg, db), db_sessions(stack.pg, db)
        rows1, (objects1, bytes1) = db_rows(stack.pg, db), s3_objects(stack.s3.client(), stack.s3.bucket, prefix)
        sampler.stopped.set()
        sampler.join(timeout=30)
        n = len(ids) - 1
        runs = run_durations(instance, bf_id)
        # Launch -> first run started: mostly the wait for the backfill daemon's next pass (Dagster runs
        # it every 30 s, not configurable); the rate after it is what the stack sustains.
        pickup = runs.get("first_start", math.nan) - instance.get_backfill(bf_id).backfill_timestamp
        result.figures = {
            "assets": n, "wall_s": wall, "assets_per_min": runs.get("succeeded", 0) / wall * 60,
            "pickup_s": pickup, "assets_per_min_after_pickup": runs.get("succeeded", 0) / (wall - pickup) * 60,
            "succeeded": runs.get("succeeded", 0), "runs": runs,
            "lone": {"wall_s": lone_wall, **lone},
            "overhead_per_asset_s": runs.get("mean_run_s", math.nan) - lone.get("mean_run_s", math.nan),
            "peak_rss_mb": {k: v / 2 ** 20 for k, v in sampler.peak_rss.items()},
            "cpu_s_per_asset_gross": {k: (cpu1.get(k, 0) - cpu0.get(k, 0)) / n for k in components},
            "idle_cpu_share": idle_rate,
            "cpu_s_per_asset": {k: max(0.0, cpu1.get(k, 0) - cpu0.get(k, 0) - idle_rate.get(k, 0) * wall) / n
                                for k in components},
            "lone_breakdown_s": run_breakdown(instance, lone["run_ids"][0]),
            "backfill_breakdown_s": mean_breakdown(instance, runs.get("run_ids", [])),
            "db_rows_per_asset": sum(rows1.values()) / n - sum(rows0.values()) / n,
            "db_rows_by_table": {t: rows1.get(t, 0) - rows0.get(t, 0) for t in rows1 if rows1.get(t, 0) != rows0.get(t, 0)},
            "db_connections_per_asset": (sessions1 - sessions0) / n,
            "db_connections_per_s": (sessions1 - sessions0) / wall,
            "db_rows_read_per_asset": {t: (reads1[t] - reads0.get(t, 0)) / n for t in sorted(
                reads1, key=lambda t: reads0.get(t, 0) - reads1[t])[:6]},
            "s3_objects_per_asset": (objects1 - objects0) / n, "s3_mb_per_asset": (bytes1 - bytes0) / n / 2 ** 20,
            "sampler_error": sampler.error,
            "load_average": os.getloadavg()[0],
        }
        if workload == "vendor":
            pools_out = {}
            for pool in pools:
                name = pool.split("/", 1)[1]
                limit = sampler.limits.get(pool) or POOL_LIMITS[name]  # a pool nobody claimed yet: its default
                emu = vendor_emus[name]
                jobs = [(j.created, j.ready_at) for j in emu.jobs.values() if j.ready_at and j.created >= t0]
                at_once = intervals_at_once(jobs)
                pools_out[name] = {"limit": limit, **time_full(sampler.pool_samples[pool], limit, t0, t1),
                                   **not_full_split(sampler.pool_samples[pool], sampler.waiting[pool],
                                                    sampler.queued[pool], limit, t0, t1),
                                   "vendor_jobs": len(jobs),
                                   "vendor_record": time_full(at_once, limit, t0, t1),
                                   # from its first job to its last: the pool's own share of the work
                                   "own_span": time_full(at_once, limit, min(a for a, _ in jobs),
                                                         max(b for _, b in jobs)) if jobs else {},
                                   "jobs": sorted(jobs),
                                   # the raw samples, seconds from the launch: in use, waiting unassigned,
                                   # assigned but not yet claimed, still queued
                                   "trace": [(round(t - t0, 2), used, w, a, q) for (t, used), (_, w), (_, a), (_, q)
                                             in zip(sampler.pool_samples[pool], sampler.waiting[pool],
                                                    sampler.assigned[pool], sampler.queued[pool]) if t0 <= t <= t1]}
            result.figures["pools"] = pools_out
    return result


def _service_pids(stack: Stack) -> dict[str, tuple[int, ...]]:
    pids = {"postgres": (stack.pg.pid,), "s3": (stack.s3.pid,)}
    for p in read_procs().values():  # redis-server is a child of this process
        if p.ppid == os.getpid() and b"redis-server" in Path(f"/proc/{p.pid}/cmdline").read_bytes():
            pids["redis"] = (p.pid,)
    return pids


# -- the report ------------------------------------------------------------------------------------

def table(results: list[Result], compress: float) -> str:
    out = io.StringIO()
    w = out.write
    head = (f"{'workload':8} {'workers':>7} {'assets':>6} {'wall':>7} {'assets/min':>10} {'lone run':>8} "
            f"{'mean run':>8} {'overhead':>8} {'queued':>7} {'daemon MB':>9} {'worker MB':>13} "
            f"{'db rows/asset':>13} {'s3 obj/asset':>12}")
    w(head + "\n" + "-" * len(head) + "\n")
    for r in results:
        f = r.figures
        workers_mb = "/".join(f"{v:.0f}" for k, v in sorted(f["peak_rss_mb"].items()) if k.startswith("worker"))
        w(f"{r.workload:8} {r.workers:>4}x{r.concurrency:<2} {f['assets']:>6} {f['wall_s']:>6.0f}s "
          f"{f['assets_per_min']:>10.1f} {f['lone'].get('mean_run_s', math.nan):>7.1f}s "
          f"{f['runs'].get('mean_run_s', math.nan):>7.1f}s {f['overhead_per_asset_s']:>+7.1f}s "
          f"{f['runs'].get('mean_queued_s', math.nan):>6.0f}s {f['peak_rss_mb'].get('daemon', 0):>9.0f} "
          f"{workers_mb:>13} {f['db_rows_per_asset']:>13.0f} {f['s3_objects_per_asset']:>12.1f}\n")
    w("\nlaunch to first run started (the backfill daemon's next pass, every 30 s in Dagster), and the rate "
      "after it:\n")
    for r in results:
        f = r.figures
        w(f"  {r.workload} {r.workers} worker(s): first run started {f.get('pickup_s', math.nan):.0f} s after "
          f"launch; {f.get('assets_per_min_after_pickup', math.nan):.1f} assets/min from then on\n")
    w("\nwhere a run's time goes (s; lone run / mean of up to 10 backfill runs; queued = in the run queue, "
      "to worker = launched until a worker process started it, waiting in the broker included):\n")
    for r in results:
        lone, bf = r.figures["lone_breakdown_s"], r.figures["backfill_breakdown_s"]
        w(f"  {r.workload} {r.workers} worker(s): " + ", ".join(
            f"{k.removesuffix('_s')} {lone.get(k, 0):.1f}/{bf.get(k, 0):.1f}" for k in sorted(set(lone) | set(bf))) + "\n")
    w("\ndatabase per asset: connections opened (each a new PostgreSQL backend), and rows read by the "
      "busiest tables (sequential scans + index fetches):\n")
    for r in results:
        f = r.figures
        w(f"  {r.workload} {r.workers} worker(s): {f.get('db_connections_per_asset', math.nan):.0f} connections "
          f"({f.get('db_connections_per_s', math.nan):.0f}/s); rows read: " + ", ".join(
            f"{t} {v:,.0f}" for t, v in r.figures.get("db_rows_read_per_asset", {}).items()) + "\n")
    w("\nCPU seconds per asset by component, net of the idle stack (the scaling model's inputs):\n")
    names = sorted({k for r in results for k in r.figures["cpu_s_per_asset"]})
    w(f"  {'':18}" + "".join(f"{n:>10}" for n in names) + "\n")
    for r in results:
        w(f"  {r.workload + ' ' + str(r.workers) + ' worker(s)':18}"
          + "".join(f"{r.figures['cpu_s_per_asset'].get(n, 0):>10.2f}" for n in names) + "\n")
    for r in results:
        if "pools" not in r.figures:
            continue
        w(f"\nvendor pools, {r.workers} worker(s) x {r.concurrency} processes (vendor time "
          f"{VENDOR_SECONDS[0]:.0f}-{VENDOR_SECONDS[1]:.0f} s / {compress:g}x):\n")
        for name, p in r.figures["pools"].items():
            ok = p["full_share"] >= TARGET_POOL_FULL
            own = p.get("own_span", {}).get("full_share", math.nan)
            w(f"  kiln/{name:10} limit {p['limit']}: full {p['full_share']:6.1%} of the backfill, mean "
              f"{p['mean_busy']:6.1%} busy (vendor's record: {p['vendor_record']['mean_busy']:6.1%} busy, "
              f"{p['vendor_jobs']} jobs; full {own:6.1%} from its first job to its last)  "
              f"target >= {TARGET_POOL_FULL:.0%}: {'met' if ok else 'NOT met'}\n"
              f"  {'':15} not full {p.get('not_full_run_waiting', math.nan):6.1%} of the backfill with a run "
              f"waiting at the pool, {p.get('not_full_runs_queued', math.nan):6.1%} with none waiting but its runs "
              f"in the run queue, {p.get('not_full_no_work', math.nan):6.1%} with no run left for it; "
              f"full {full_while_work(p):6.1%} of the time it had work\n")
            if p.get("trace"):
                at, seconds, unclaimed = longest_refill_wait(p["trace"], p["limit"])
                w(f"  {'':15} longest wait with a slot free and a run waiting: {seconds:.1f} s (at {at:.0f} s; "
                  f"{unclaimed} step(s) assigned a slot they had not claimed)\n")
        most = r.figures.get("runs", {}).get("most_in_flight_by_provider")
        if most:
            w("  most runs in flight at once per provider (the run queue's `kiln/provider` limits): "
              + ", ".join(f"{k} {v}" for k, v in most.items()) + "\n")
    w("\n" + targets_and_model(results, compress))
    return out.getvalue()


def targets_and_model(results: list[Result], compress: float) -> str:
    from pipeline.providers import POOL_LIMITS, REMOTE_PROVIDERS

    lines = []
    offline = [r for r in results if r.workload == "offline"]
    if offline:
        best = max(offline, key=lambda r: r.figures["assets_per_min"])
        rate = best.figures["assets_per_min"]
        lines.append(f"target offline >= {TARGET_OFFLINE_PER_MIN:.0f} assets/min on this {os.cpu_count()}-core "
                     f"machine: {'met' if rate >= TARGET_OFFLINE_PER_MIN else 'NOT met'} (best {rate:.1f}, "
                     f"{best.workers} worker(s))")
    for workload in ("offline", "vendor"):
        runs = sorted((r for r in results if r.workload == workload), key=lambda r: r.workers)
        if not runs:
            continue
        lines.append(f"\nscaling model, {workload}:")
        for r in runs:
            lines.append(f"  measured {r.workers} worker(s): {r.figures['assets_per_min']:.1f} assets/min")
        if len(runs) >= 2:
            a, b = runs[0], runs[-1]
            gain = b.figures["assets_per_min"] / max(a.figures["assets_per_min"], 1e-9)
            lines.append(f"  {a.workers} -> {b.workers} workers on one {os.cpu_count()}-core box: x{gain:.2f} "
                         "(the workers share its cores with the daemon, database, broker and S3)")
        # On paper: each worker machine adds what one worker process costs in CPU; the shared services
        # (one daemon, one database, one broker, one S3) take their measured CPU per asset at that rate.
        last = runs[-1]
        cpu = last.figures["cpu_s_per_asset"]
        worker_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
        per_machine = 60 * (os.cpu_count() or 2) / max(worker_cpu, 1e-9)  # a 2-core worker machine, CPU-bound
        demand = SCALE_TO * per_machine
        lines.append(f"  worker CPU {worker_cpu:.2f} s/asset -> one {os.cpu_count()}-core worker machine "
                     f"<= {per_machine:.0f} assets/min when CPU-bound; {SCALE_TO} machines ask {demand:.0f}/min of:")
        shared = {"daemon": 1, "postgres": 4, "redis": 1, "s3": 4}  # cores each can use (daemon, redis: one)
        ceilings = {}
        idle = last.figures.get("idle_cpu_share", {})
        for name, cores in shared.items():
            per_asset, background = cpu.get(name, 0.0), idle.get(name, 0.0)
            # what is left of its cores after the idle stack's own load (sensor ticks, daemon loops)
            ceiling = 60 * max(cores - background, 0.0) / per_asset if per_asset > 0 else float("inf")
            ceilings[name] = ceiling
            lines.append(f"    {name:9} {per_asset:6.3f} CPU s/asset + {background:4.2f} core idle, {cores} core(s) -> "
                         f"ceiling {ceiling:8.0f} assets/min ({min(demand / ceiling, 99):.0%} busy at {SCALE_TO} machines)")
        if workload == "vendor":
            slots = sum(POOL_LIMITS[p] for p in REMOTE_PROVIDERS)
            vendor_ceiling = 60 * slots / (sum(VENDOR_SECONDS) / 2)
            ceilings["vendor pools"] = vendor_ceiling
            lines.append(f"    vendor pools: {slots} slots / {sum(VENDOR_SECONDS) / 2:.0f} s mean job at real "
                         f"latency -> ceiling {vendor_ceiling:.0f} assets/min whatever the machines "
                         f"(x{compress:g} here: {vendor_ceiling * compress:.0f}/min)")
        name, ceiling = min(ceilings.items(), key=lambda kv: kv[1])
        lines.append(f"  bottleneck at {SCALE_TO} machines: {name} (ceiling {ceiling:.0f} assets/min; "
                     f"{SCALE_TO} machines would deliver {min(demand, ceiling):.0f}/min)")
    return "\n".join(lines) + "\n"


def save(path: Path, args, results: list[Result], report: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    args_out = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    path.write_text(json.dumps({"args": args_out, "results": [r.__dict__ for r in results], "report": report},
                               indent=2, default=str))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=1000, help="assets per backfill (default 1000)")
    parser.add_argument("--workloads", default="offline,vendor")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    parser.add_argument("--compress", type=float, default=30.0, help="vendor time divided by this (default 30)")
    parser.add_argument("--offline-concurrency", type=int, default=1, help="run processes per worker, offline")
    parser.add_argument("--vendor-concurrency", type=int, default=13,
                        help="run processes per worker, vendor (runs mostly wait on the vendor; two workers "
                             "x 13 hold the 26 runs deploy/dagster.celery.yaml lets the vendors have at once)")
    parser.add_argument("--timeout-s", type=float, default=4 * 3600)
    parser.add_argument("--progress-s", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs) for a look")
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle window measuring the stack's background CPU")
    parser.add_argument("--report", type=Path, help="print the table of an earlier run's JSON and exit")
    args = parser.parse_args()
    # Stopped from a script (SIGTERM, or SIGINT where a background job ignores it): unwind, so that
    # every server, worker and daemon this bench started is stopped by its context manager.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.report:
        saved = json.loads(args.report.read_text())
        print(table([Result(**r) for r in saved["results"]], saved["args"]["compress"]))
        return 0
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    counts = [int(c) for c in args.workers.split(",")]
    if set(workloads) - {"offline", "vendor"}:
        parser.error("--workloads takes offline and/or vendor")

    from tests.pgserver import running_postgres
    from tests.redisserver import running_redis
    from tests.s3server import running_s3_server

    work = Path(tempfile.mkdtemp(prefix="kiln-backfill-bench-"))
    path = OUT / f"backfill-{time.strftime('%Y%m%d-%H%M%S')}.json"
    results: list[Result] = []
    started = time.monotonic()
    with running_postgres() as pg, running_redis(work / "redis") as redis_url, running_s3_server(work / "s3") as s3:
        stack = Stack(pg, redis_url, s3, work)
        for workload in workloads:
            deal = vendor_deal()
            ids = [f"{workload}-{n:05d}" for n in range(args.assets + 1)]  # the first is the lone run
            data = work / f"data-{workload}"
            t = time.monotonic()
            concept_folders(data, ids, (lambda n: "local") if workload == "offline" else (lambda n: deal[n % len(deal)]),
                            DEFAULT_POLL_S / args.compress)
            print(f"{workload}: {len(ids)} concept folders written in {time.monotonic() - t:.1f} s", flush=True)
            for workers in counts:
                concurrency = args.offline_concurrency if workload == "offline" else args.vendor_concurrency
                t = time.monotonic()
                results.append(measure(stack, workload, workers, concurrency, ids, data, args))
                save(path, args, results)  # a late failure keeps what was measured (--report reads it)
                print(f"{workload} with {workers} worker(s): measured in {time.monotonic() - t:.0f} s "
                      "(servers up, lone run, backfill, teardown)", flush=True)
    report = table(results, args.compress)
    save(path, args, results, report)
    print(f"\nbackfill of {args.assets} assets, load average {os.getloadavg()[0]:.2f}, whole bench "
          f"{_duration(time.monotonic() - started)}:\n")
    print(report)
    print(f"results: {path.relative_to(ROOT)}")
    if args.keep:
        print(f"working folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
