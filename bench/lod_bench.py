"""Kiln's LOD chain against gltfpack, measured in the same run.

    .venv/bin/python bench/lod_bench.py [--samples N] [--repeat N]

Inputs: the 200K-triangle generated mesh in ../shared/testdata/highpoly/ (skipped with a note when
absent) and a synthetic 500K-triangle textured mesh (a displaced UV sphere with a 2048 px texture,
generated deterministically here). For each, the chain 50% / 25% / 12.5% / 5% of the source:

- Kiln: `build_lod_chain` (attribute-aware cascade + vertex cache/overdraw/fetch + textures), timed
  alone ("chain") and end to end from the source GLB bytes to one GLB per level ("file to files",
  what one gltfpack call per level does).
- gltfpack (node_modules/.bin/gltfpack): one run per level, `-si R -kv -noq` (no quantization, so
  read_glb reads the output and both are measured on the same float positions), timed per run.

Both outputs are scored with the same metric: `surface_distance` (symmetric, point-to-triangle,
fixed seed, max also over the vertices) against the source, at the triangle counts each reached.
Timings are the best of --repeat runs (the machine may be shared: the load average is printed).
Kiln's chain uses a small thread pool (GPU optimization and textures beside the simplification
cascade); gltfpack (wasm) runs single-threaded, one process per level.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.geometry.glb import read_glb, write_glb  # noqa: E402
from pipeline.geometry.lod import LodBudget, Surface, build_lod_chain, surface_distance  # noqa: E402
from pipeline.geometry.model import Material, Model, Primitive, Texture, vertex_normals  # noqa: E402

HIGHPOLY = ROOT.parent / "shared/testdata/highpoly/stepfun-ai__Step1X-3D/examples/texture_example/000.glb"
GLTFPACK = ROOT / "node_modules/.bin/gltfpack"
RATIOS = (0.5, 0.25, 0.125, 0.05)


def synthetic_sphere(segments: int = 625, rings: int = 401, texture_px: int = 2048) -> Model:
    """A displaced UV sphere (1 m radius, bumps at three scales) with a seam, poles and a texture:
    2 * segments * (rings - 1) triangles (500,000 by default)."""
    u = np.linspace(0.0, 1.0, segments + 1)
    v = np.linspace(0.0, 1.0, rings + 1)
    uu, vv = np.meshgrid(u, v)
    theta, phi = vv * np.pi, uu * 2.0 * np.pi
    r = 1.0 + 0.04 * (np.sin(5 * phi) * np.sin(4 * theta)
                      + 0.5 * np.sin(23 * phi + 1.0) * np.sin(17 * theta)
                      + 0.25 * np.sin(61 * phi) * np.sin(53 * theta))
    positions = np.stack([r * np.sin(theta) * np.cos(phi), r * np.cos(theta), r * np.sin(theta) * np.sin(phi)], -1)
    grid = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    a, b, c, d = grid[:-1, :-1], grid[:-1, 1:], grid[1:, :-1], grid[1:, 1:]
    # the pole rows would give zero-area quads' halves: one triangle per cell there
    top = np.stack([a, d, b], -1)[1:].reshape(-1, 3)
    bottom = np.stack([a, c, d], -1)[:-1].reshape(-1, 3)
    indices = np.concatenate([top, bottom]).reshape(-1)
    positions = positions.reshape(-1, 3).astype(np.float32)
    uvs = np.stack([uu, vv], -1).reshape(-1, 2).astype(np.float32)
    x = np.linspace(0.0, 1.0, texture_px, dtype=np.float32)
    tx, ty = np.meshgrid(x, x)
    rgb = np.stack([0.5 + 0.5 * np.sin(40 * tx), 0.5 + 0.5 * np.sin(30 * ty), 0.5 + 0.25 * np.sin(90 * (tx + ty))], -1)
    png = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8), "RGB").save(png, format="PNG")
    material = Material(name="painted", base_color_texture=Texture(png.getvalue()))
    prim = Primitive(positions, indices, vertex_normals(positions, indices), uvs)
    return Model([prim], [material], name="synthetic_sphere")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kiln_chain(model: Model, source_glb: bytes) -> tuple[list[Model], float, float, float]:
    """One Kiln chain: (levels 1..4, wall seconds in memory, CPU seconds of that (all threads),
    wall seconds from GLB bytes to GLB bytes)."""
    budget = LodBudget(lod0_triangles=model.triangle_count, ratios=RATIOS)
    t, cpu = time.perf_counter(), time.process_time()
    chain = build_lod_chain(model, budget, measure=False)
    chain_s, chain_cpu = time.perf_counter() - t, time.process_time() - cpu
    t = time.perf_counter()
    for lod in build_lod_chain(read_glb(source_glb), budget, measure=False)[1:]:
        write_glb(lod.model)
    return [lod.model for lod in chain[1:]], chain_s, chain_cpu, time.perf_counter() - t


def gltfpack_chain(source_path: Path, workdir: Path) -> tuple[list[Path], float, float]:
    """One gltfpack run per level: (output files, total wall seconds, total CPU seconds)."""
    if not GLTFPACK.exists():
        raise SystemExit(f"gltfpack not found at {GLTFPACK}: run `npm install`")
    outputs, total = [], 0.0
    cpu = children_cpu()
    for ratio in RATIOS:
        out = workdir / f"gltfpack_{ratio}.glb"
        t = time.perf_counter()
        subprocess.run([str(GLTFPACK), "-i", str(source_path), "-o", str(out), "-si", str(ratio), "-kv", "-noq"],
                       check=True, capture_output=True)
        total += time.perf_counter() - t
        outputs.append(out)
    return outputs, total, children_cpu() - cpu


def run(name: str, model: Model, samples: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source_glb = write_glb(model)
        source_path = Path(tmp) / "source.glb"
        source_path.write_bytes(source_glb)
        chain_s = chain_cpu = e2e_s = pack_s = pack_cpu = math.inf
        for _ in range(repeat):  # interleaved, so both see the same machine load
            kiln, wall, cpu, e2e = kiln_chain(model, source_glb)
            chain_s, chain_cpu, e2e_s = min(chain_s, wall), min(chain_cpu, cpu), min(e2e_s, e2e)
            outputs, wall, cpu = gltfpack_chain(source_path, Path(tmp))
            pack_s, pack_cpu = min(pack_s, wall), min(pack_cpu, cpu)
        pack = [read_glb(p.read_bytes()) for p in outputs]
    reference = Surface(model)  # the same source samples score both
    t = time.perf_counter()
    kiln_err = [surface_distance(reference, m, samples) for m in kiln]
    measure_s = (time.perf_counter() - t) / len(kiln)
    pack_err = [surface_distance(reference, m, samples) for m in pack]

    size_mm = float(np.max(model.size())) * 1000
    print(f"\n## {name}: {model.triangle_count:,} triangles, {model.vertex_count:,} vertices, "
          f"size {size_mm:.0f} mm, {samples:,} samples per surface and direction")
    print(f"Kiln chain (4 levels, in memory): {chain_s:.3f} s wall, {chain_cpu:.3f} s CPU; "
          f"file to files: {e2e_s:.3f} s wall; gltfpack 4 runs: {pack_s:.3f} s wall, {pack_cpu:.3f} s CPU")
    print(f"speedup vs gltfpack: {pack_s / chain_s:.2f}x (chain), {pack_s / e2e_s:.2f}x (file to files), "
          f"{pack_cpu / chain_cpu:.2f}x in CPU time; error measurement: {measure_s:.3f} s per level")
    print()
    print("| level | target | Kiln tris | gltfpack tris | Kiln mean mm | gltfpack mean mm | Kiln max mm | "
          "gltfpack max mm | mean ratio | max ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, ratio in enumerate(RATIOS):
        (km, kx), (pm, px) = kiln_err[i], pack_err[i]
        print(f"| {i + 1} | {ratio:.3f} | {kiln[i].triangle_count:,} | {pack[i].triangle_count:,} | "
              f"{km * 1000:.3f} | {pm * 1000:.3f} | {kx * 1000:.3f} | {px * 1000:.3f} | "
              f"{km / pm:.2f} | {kx / px:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (1/5/15 min) at start")
    print("error ratio = Kiln / gltfpack (<= 1.00: Kiln no worse); speedup = gltfpack time / Kiln time")
    if HIGHPOLY.exists():
        run("Step1X-3D highpoly (000.glb)", read_glb(HIGHPOLY.read_bytes()), args.samples, args.repeat)
    else:
        print(f"\n(skipping the highpoly mesh: {HIGHPOLY} not found)")
    run("synthetic textured sphere", synthetic_sphere(), args.samples, args.repeat)


if __name__ == "__main__":
    main()
