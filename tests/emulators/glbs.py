"""Result GLBs the emulators return: real generated models when the shared test data is there.

The Step1X-3D outputs in `../shared/testdata/glb/textured/stepfun-ai__Step1X-3D/assets/step/` are
what an image-to-3D service really sends back (textured, ~4 MB). Without that folder the emulators
fall back to a small textured-free cube written by Kiln's own GLB writer.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from pipeline.geometry.glb import write_glb
from pipeline.geometry.model import Model, Primitive

STEP1X_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "glb" / "textured" / \
    "stepfun-ai__Step1X-3D" / "assets" / "step"


def cube_glb() -> bytes:
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (0.0, 1.0) for z in (-0.5, 0.5)], np.float32)
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
             (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    return write_glb(Model([Primitive(corners, np.array(faces, np.uint32).ravel())]), node_name="cube")


@functools.cache
def sample_glbs() -> tuple[bytes, ...]:
    files = sorted(STEP1X_DIR.glob("*.glb")) if STEP1X_DIR.is_dir() else []
    return tuple(p.read_bytes() for p in files) or (cube_glb(),)


def sample_glb(index: int = 0) -> bytes:
    glbs = sample_glbs()
    return glbs[index % len(glbs)]


def using_real_outputs() -> bool:
    return STEP1X_DIR.is_dir() and any(STEP1X_DIR.glob("*.glb"))
