"""The in-memory model every geometry function works on: flat typed arrays, no hidden copies.

A `Model` is what a GLB holds once its node transforms are baked in: a list of triangle
primitives (positions, optional normals and UVs, flat uint32 indices) and their materials.
Units are meters, +Y up, +Z forward (glTF's convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Texture:
    """An encoded image as stored in the GLB (PNG or JPEG bytes)."""

    data: bytes
    mime_type: str = "image/png"


@dataclass
class Material:
    """A glTF PBR metallic-roughness material."""

    name: str = "material"
    base_color_factor: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    base_color_texture: Texture | None = None
    metallic: float = 0.0
    roughness: float = 0.8
    double_sided: bool = False
    alpha_mode: str = "OPAQUE"


@dataclass
class Primitive:
    """One indexed triangle list with one material."""

    positions: np.ndarray  # (n, 3) float32
    indices: np.ndarray  # (3m,) uint32, flat
    normals: np.ndarray | None = None  # (n, 3) float32
    uvs: np.ndarray | None = None  # (n, 2) float32
    material: int = 0

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float32).reshape(-1, 3)
        self.indices = np.ascontiguousarray(self.indices, dtype=np.uint32).reshape(-1)
        if self.normals is not None:
            self.normals = np.ascontiguousarray(self.normals, dtype=np.float32).reshape(-1, 3)
        if self.uvs is not None:
            self.uvs = np.ascontiguousarray(self.uvs, dtype=np.float32).reshape(-1, 2)

    @property
    def triangle_count(self) -> int:
        return len(self.indices) // 3

    @property
    def vertex_count(self) -> int:
        return len(self.positions)

    @property
    def triangles(self) -> np.ndarray:
        """Indices as an (m, 3) view."""
        return self.indices.reshape(-1, 3)


@dataclass
class Model:
    primitives: list[Primitive]
    materials: list[Material] = field(default_factory=lambda: [Material()])
    name: str = "model"

    @property
    def triangle_count(self) -> int:
        return sum(p.triangle_count for p in self.primitives)

    @property
    def vertex_count(self) -> int:
        return sum(p.vertex_count for p in self.primitives)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (min, max) over all primitives, in meters."""
        if not self.primitives or not any(p.vertex_count for p in self.primitives):
            return np.zeros(3, np.float32), np.zeros(3, np.float32)
        lo = np.min([p.positions.min(axis=0) for p in self.primitives if p.vertex_count], axis=0)
        hi = np.max([p.positions.max(axis=0) for p in self.primitives if p.vertex_count], axis=0)
        return lo, hi

    def size(self) -> np.ndarray:
        lo, hi = self.bounds()
        return hi - lo


def face_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Unnormalized face normals (length = 2 x area), one per triangle."""
    tri = positions[indices.reshape(-1, 3)]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def vertex_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, unit length (a vertex with no area gets +Y)."""
    fn = face_normals(positions, indices).astype(np.float64)
    acc = np.zeros((len(positions), 3), np.float64)
    tri = indices.reshape(-1, 3)
    for k in range(3):
        np.add.at(acc, tri[:, k], fn)
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    out = np.where(length > 1e-20, acc / np.maximum(length, 1e-20), [0.0, 1.0, 0.0])
    return out.astype(np.float32)
