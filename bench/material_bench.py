"""Real production GLBs through import + normalize + LOD chain + every export profile: time, peak
memory and the material-fidelity table, for this checkout ("after") and for the code before the
full-material change ("before": `git archive` of --before-rev into a temporary folder, or an
existing checkout given as --before DIR), measured in the same run.

    .venv/bin/python bench/material_bench.py [--before-rev REV | --before DIR] [--only NAME]

Each (checkout, file) runs in its own process, so peak RSS (ru_maxrss) is that file's alone. The
fidelity columns come from the exported Unity GLB's JSON (one file holding every level), so both
checkouts are scored by the same code: material texture slots, material extensions, vertex
attributes and images. "refused" is the reader's reason when a checkout cannot read the file.
Also prints the figure behind dropping pygltflib: parsing the glTF JSON document with json.loads
against pygltflib's GLTF2.from_json (when pygltflib is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = ROOT.parent / "shared" / "testdata"


def _files() -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from tests.test_material_fidelity import FILES

    return dict(FILES)


def worker(code: str, path: str) -> dict:
    """Runs inside a child process whose sys.path starts at `code` (the checkout under test)."""
    sys.path.insert(0, code)
    try:  # the prop chain: in the category table now, beside the LOD code before
        from pipeline.categories import CATEGORIES
        prop_budget = CATEGORIES["prop"].lod
    except (ImportError, AttributeError):
        from pipeline.geometry.lod import CATEGORY_BUDGETS
        prop_budget = CATEGORY_BUDGETS["prop"]
    from pipeline.export.profiles import ExportInput, ExportLevel, build_profile
    from pipeline.geometry.glb import GlbError, parse_container, read_glb
    from pipeline.geometry.lod import build_lod_chain
    from pipeline.geometry.normalize import normalize

    data = Path(path).read_bytes()
    out: dict = {}
    t0 = time.perf_counter()
    try:
        model = read_glb(data, allow_animation=True)
    except GlbError as exc:
        return {"refused": str(exc)[:90]}
    model, _ = normalize(model)
    model.name = "bench"
    t1 = time.perf_counter()
    chain = build_lod_chain(model, prop_budget)
    t2 = time.perf_counter()
    inp = ExportInput("bench", "bench", [ExportLevel(lv.level, lv.model, lv.triangles, lv.error_m, lv.screen_size)
                                         for lv in chain])
    files = {p: build_profile(inp, p) for p in ("web", "unity", "unreal", "godot")}
    t3 = time.perf_counter()
    unity = next(f for f in files["unity"] if f.role == "glb").data
    slots, extensions, attributes = _inventory(parse_container(unity)[0])
    src_slots, src_ext, src_attr = _inventory(parse_container(data)[0])
    src_attr = {a for a in src_attr if not a.startswith(("JOINTS", "WEIGHTS"))}  # the skin is dropped by design
    out.update(
        import_s=t1 - t0, lod_s=t2 - t1, export_s=t3 - t2, total_s=t3 - t0,
        peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        levels=len(chain), lod0_triangles=chain[0].triangles,
        slots=f"{len(slots & src_slots)}/{len(src_slots)}", extensions=f"{len(extensions & src_ext)}/{len(src_ext)}",
        attributes=f"{len(attributes & src_attr)}/{len(src_attr)}",
        missing=sorted((src_slots - slots) | (src_ext - extensions) | (src_attr - attributes)),
        images=len(parse_container(unity)[0].get("images", [])),
    )
    return out


def _inventory(doc: dict) -> tuple[set[str], set[str], set[str]]:
    """(texture slots, material extensions, vertex attributes) named anywhere in a glTF document."""
    slots: set[str] = set()
    extensions: set[str] = set()
    attributes: set[str] = set()
    for m in doc.get("materials", []):
        for owner in (m, m.get("pbrMetallicRoughness", {}), *m.get("extensions", {}).values()):
            slots |= {k for k in owner if k.endswith("Texture")} if isinstance(owner, dict) else set()
        extensions |= set(m.get("extensions", {}))
    for mesh in doc.get("meshes", []):
        for prim in mesh["primitives"]:
            attributes |= set(prim["attributes"])
    return slots, extensions, attributes


def run(code: Path, path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, __file__, "--worker", str(code), str(path)], capture_output=True,
                          text=True, env=env, cwd=code, timeout=900)
    if proc.returncode:
        return {"refused": f"crashed: {proc.stderr.strip().splitlines()[-1][:90]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pygltflib_figure(paths: list[Path]) -> str:
    try:
        import pygltflib
    except ImportError:
        return "pygltflib not installed (dropped as a dependency)"
    sys.path.insert(0, str(ROOT))
    from pipeline.geometry.glb import parse_container

    ours = theirs = 0.0
    for path in paths:
        text = json.dumps(parse_container(path.read_bytes())[0])
        t = time.perf_counter()
        for _ in range(10):
            json.loads(text)
        ours += (time.perf_counter() - t) / 10
        t = time.perf_counter()
        for _ in range(10):
            pygltflib.GLTF2.from_json(text)
        theirs += (time.perf_counter() - t) / 10
    return (f"glTF JSON of {len(paths)} files: json.loads {ours * 1e3:.1f} ms, pygltflib.GLTF2.from_json "
            f"{theirs * 1e3:.1f} ms ({theirs / ours:.0f}x); pygltflib's to_json also adds defaults and "
            "rewrites asset.generator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="an existing checkout to compare against")
    # b93c381: the last commit before issue 10 (base colour only, no Draco/meshopt input).
    parser.add_argument("--before-rev", default="b93c381", help="git revision to compare against")
    parser.add_argument("--only", help="one file name from the list")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    if not TESTDATA.is_dir():
        print(f"skipped: third-party test data not found at {TESTDATA}")
        return
    files = {k: v for k, v in _files().items() if not args.only or k == args.only}
    with tempfile.TemporaryDirectory(prefix="kiln-before-") as tmp:
        before = Path(args.before) if args.before else _archive(args.before_rev, Path(tmp))
        _table(files, before)


def _archive(rev: str, into: Path) -> Path:
    """The files of `rev` (no git worktree: nothing in the repository changes)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _table(files: dict[str, str], before: Path) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}; before = {before}, after = {ROOT}")
    header = (f"{'file':<20} {'run':<6} {'import s':>8} {'lod s':>7} {'export s':>8} {'total s':>8} {'peak MiB':>8}"
              f"  {'slots':>5} {'exts':>5} {'attrs':>5} {'images':>6}  missing / refused")
    print(header)
    for name, rel in files.items():
        path = TESTDATA / rel
        rows = {"before": run(before, path) if before.is_dir() else {"refused": "no checkout"},
                "after": run(ROOT, path)}
        for label, r in rows.items():
            if "refused" in r:
                print(f"{name:<20} {label:<6} {'-':>8} {'-':>7} {'-':>8} {'-':>8} {'-':>8}  {'':>5} {'':>5} {'':>5} "
                      f"{'':>6}  refused: {r['refused']}")
                continue
            print(f"{name:<20} {label:<6} {r['import_s']:8.2f} {r['lod_s']:7.2f} {r['export_s']:8.2f} "
                  f"{r['total_s']:8.2f} {r['peak_mib']:8.0f}  {r['slots']:>5} {r['extensions']:>5} "
                  f"{r['attributes']:>5} {r['images']:>6}  {', '.join(r['missing'])}")
        b, a = rows["before"], rows["after"]
        if "total_s" in a and "total_s" in b:
            print(f"{'':<20} ratio  after/before time {a['total_s'] / b['total_s']:.2f}x, "
                  f"peak memory {a['peak_mib'] / b['peak_mib']:.2f}x")
    print(pygltflib_figure([TESTDATA / rel for rel in files.values()]))


if __name__ == "__main__":
    main()
