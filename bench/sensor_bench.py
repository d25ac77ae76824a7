"""One `new_concept_art` tick over a studio-sized concepts folder (target: under 2 s).

    .venv/bin/python bench/sensor_bench.py [--folders 1000] [--repeat 3]

Builds N concept folders (a small PNG each, distinct bytes, every tenth with an asset.toml naming
its provider) in a temporary KILN_DATA_DIR and a real Dagster instance (SQLite, the repo's
dagster.yaml) in a temporary DAGSTER_HOME, then times the sensor as the daemon runs it, with its
partition requests applied as the daemon applies them:

- first tick: every folder new (hashing all the art, one partition request, N run requests);
- steady tick: nothing changed (what the daemon pays every 5 s): best of --repeat;
- one edit: one folder's art changed (one run request);
- one gone: one folder deleted (retired) and one renamed (a new partition tagged renamed_from);
- cold steady tick: the steady tick in a fresh process's state (the file-hash cache emptied), as
  after a daemon restart: every file hashed again.
The load average is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def png(seed: int) -> bytes:
    import io

    from PIL import Image

    img = Image.new("RGBA", (64, 64), (seed % 251, seed // 251 % 251, 90, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def tick(instance, cursor):
    import dagster as dg

    from pipeline.sensors import new_concept_art

    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    t0 = time.perf_counter()
    result = new_concept_art(ctx)
    elapsed = time.perf_counter() - t0
    for request in result.dynamic_partitions_requests:  # as the daemon does, after the evaluation
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result, ctx.cursor, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kiln-sensor-bench-"))
    try:
        data, home = work / "data", work / "home"
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        os.environ.update({"KILN_DATA_DIR": str(data), "DAGSTER_HOME": str(home)})
        t0 = time.perf_counter()
        for n in range(args.folders):
            folder = data / "concepts" / f"asset-{n:05d}"
            folder.mkdir(parents=True)
            (folder / "front.png").write_bytes(png(n))
            if n % 10 == 0:
                (folder / "asset.toml").write_text('provider = "local"\ncategory = "prop"\n')
        print(f"{args.folders} concept folders written in {time.perf_counter() - t0:.1f} s")

        import dagster as dg

        from pipeline import concepts

        rows = []
        with dg.DagsterInstance.from_config(str(home)) as instance:
            result, cursor, first = tick(instance, None)
            assert len(result.run_requests) == args.folders
            rows.append(("first tick (all new)", first, f"{len(result.run_requests)} run requests"))

            steady = []
            for _ in range(args.repeat):
                result, cursor, elapsed = tick(instance, cursor)
                assert not result.run_requests
                steady.append(elapsed)
            rows.append(("steady tick (no change), best", min(steady), f"of {args.repeat}: "
                         + ", ".join(f"{s:.2f}" for s in steady)))

            (data / "concepts" / "asset-00007" / "front.png").write_bytes(png(10 ** 6))
            result, cursor, elapsed = tick(instance, cursor)
            assert [r.partition_key for r in result.run_requests] == ["asset-00007"]
            rows.append(("one folder edited", elapsed, "1 run request"))

            shutil.rmtree(data / "concepts" / "asset-00011")
            (data / "concepts" / "asset-00012").rename(data / "concepts" / "renamed-00012")
            result, cursor, elapsed = tick(instance, cursor)
            assert [r.tags.get("kiln/renamed_from") for r in result.run_requests] == ["asset-00012"]
            rows.append(("one gone, one renamed", elapsed, "2 retired, 1 run request"))

            concepts._hash_cache.clear()
            result, cursor, elapsed = tick(instance, cursor)
            rows.append(("steady tick, cold hash cache", elapsed, "every file hashed again"))

        width = max(len(r[0]) for r in rows)
        print(f"\nnew_concept_art with {args.folders} concept folders (load average {os.getloadavg()[0]:.2f}):")
        for name, seconds, note in rows:
            print(f"  {name.ljust(width)}  {seconds:6.2f} s  {note}")
        worst_steady = max(r[1] for r in rows[1:])
        print(f"\ntarget < 2 s per tick after the first: {'met' if worst_steady < 2 else 'NOT met'} "
              f"(worst {worst_steady:.2f} s)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
