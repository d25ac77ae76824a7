"""Drop to catalog: how long a concept folder dropped into an idle deployment takes to be listed.

    .venv/bin/python bench/drop_bench.py [--drops 3] [--sample crate]

Starts the real daemon and webserver (as `make dev` does: the repo's dagster.yaml in a temporary
DAGSTER_HOME, a temporary KILN_DATA_DIR, the offline `local` provider), waits until the sensors are
idle, then drops one concept folder at a time (a copy of a sample in data/concepts/, one pixel
changed per drop so nothing is reused from an earlier drop) and waits for `catalog.json` to list it.
Each drop is split by stage from the Dagster event log (target: drop to catalog under 15 s):

  sensor   drop -> the run is created (the new_concept_art tick; its interval, then the scan)
  queue    run created -> launched by the daemon's run queue
  launch   launched -> the run process is up (process start, imports, code location load)
  steps    the run's steps, each named (concept_art, generated_model, lod_chain, engine_export)
  end      last step -> run success
  catalog  export published -> catalog.json lists it (the export step's own catalog update, or the
           refresh_catalog sensor's run when the step's update lost a race)
The load average is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 15.0
STEPS = ["concept_art", "generated_model", "lod_chain", "engine_export"]


def drop(data: Path, sample: Path, name: str, seed: int) -> None:
    """Copy the sample beside concepts/, change one pixel of each image, move it in whole."""
    from PIL import Image

    staging = data / ".staging" / name
    shutil.copytree(sample, staging)
    for image in sorted(staging.glob("*.png")):
        with Image.open(image) as im:
            im = im.convert("RGBA")
        w, h = im.size
        x, y = w // 2, h // 2
        r, g, b, a = im.getpixel((x, y))
        im.putpixel((x, y), ((r + seed) % 256, g, b, a))
        im.save(image)
    staging.rename(data / "concepts" / name)


def listed(exports: Path, name: str) -> bool:
    try:
        catalog = json.loads((exports / "catalog.json").read_text())
    except (OSError, ValueError):
        return False
    return any(entry["asset_id"] == name for entry in catalog.get("assets", []))


def stages(instance, name: str, dropped: float, published: float, in_catalog: float) -> dict[str, float]:
    import dagster as dg

    while True:  # the catalog can list the asset a moment before its run has ended
        (record,) = instance.get_run_records(dg.RunsFilter(tags={"kiln/asset_id": name}), limit=1)
        if record.dagster_run.is_finished:
            break
        time.sleep(0.2)
    run_id = record.dagster_run.run_id
    events = instance.all_logs(run_id)
    first = {}
    for event in events:
        kind = event.dagster_event.event_type_value if event.dagster_event else None
        key = (kind, event.step_key)
        first.setdefault(key, event.timestamp)
    created = record.create_timestamp.timestamp()
    launched, started = first[("PIPELINE_STARTING", None)], first[("PIPELINE_START", None)]
    out = {"sensor": created - dropped, "queue": launched - created, "launch": started - launched}
    previous = started
    for step in STEPS:
        done = first.get(("STEP_SUCCESS", step))
        if done is None:
            raise RuntimeError(f"{name}: step {step} did not succeed in run {run_id}")
        out[step] = done - previous
        previous = done
    out["end"] = first.get(("PIPELINE_SUCCESS", None), previous) - previous
    out["catalog"] = in_catalog - published
    out["total"] = in_catalog - dropped
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--sample", default="crate", help="a folder of data/concepts/ to copy")
    args = parser.parse_args()

    import dagster as dg

    from tests.servers import dagster_processes

    sample = ROOT / "data" / "concepts" / args.sample
    root = Path(tempfile.mkdtemp(prefix="kiln-drop-"))
    home, data = root / "dagster_home", root / "kiln-data"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    (data / "concepts").mkdir(parents=True)
    (data / ".staging").mkdir()
    # PYTHONPATH: the daemon loads Kiln's run coordinator from dagster.yaml, whatever the venv's install
    env = {"DAGSTER_HOME": str(home), "KILN_DATA_DIR": str(data), "KILN_STORE_URI": "", "KILN_EXPORT_URI": "",
           "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    rows, keep = [], False
    try:
        with dagster_processes(env, daemon=True, log_dir=root / "logs"):
            time.sleep(20)  # the daemon's first sensor ticks on the empty folder
            with dg.DagsterInstance.get() as instance:
                for n in range(args.drops):
                    name = f"drop-{n:02d}"
                    dropped = time.time()
                    drop(data, sample, name, n + 1)
                    latest, published = data / "exports" / name / "latest.json", None
                    deadline = dropped + 300
                    while not listed(data / "exports", name):
                        if published is None and latest.exists():
                            published = time.time()
                        if time.time() > deadline:
                            keep = True
                            raise RuntimeError(f"{name} not in catalog.json after 300 s; logs in {root / 'logs'}")
                        time.sleep(0.1)
                    in_catalog = time.time()
                    row = stages(instance, name, dropped, published or in_catalog, in_catalog)
                    rows.append(row)
                    print(f"{name}: " + "  ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
                    time.sleep(12)  # idle again: the catalog sensor's run (if any) and automation settle
    finally:
        if not keep:  # a failed drop keeps its logs for a look
            shutil.rmtree(root, ignore_errors=True)

    print(f"\ndrop to catalog, offline provider, sample '{args.sample}', {len(rows)} drops "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'stage':<16}{'median s':>10}{'max s':>8}")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"{key:<16}{statistics.median(values):>10.1f}{max(values):>8.1f}")
    total = statistics.median(r["total"] for r in rows)
    print(f"target: drop to catalog < {TARGET_S:.0f} s: {'met' if total < TARGET_S else 'NOT met'} "
          f"(median {total:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
