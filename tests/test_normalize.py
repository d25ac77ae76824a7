"""normalize(): each clean-up step on a small synthetic mesh where the right answer is known."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline.geometry.glb import read_glb
from pipeline.geometry.model import Material, Model, Primitive, face_normals
from pipeline.geometry.normalize import NormalizeError, degenerate_mask, normalize

CORNERS = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float64)
# Outward-facing (counter-clockwise seen from outside) quads of the unit cube, as corner ids.
QUADS = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def cube(size=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0), *, shared: bool = True) -> Primitive:
    """A closed box; `shared=False` gives each face its own four vertices (24, like an export)."""
    pos = CORNERS * size + offset
    if shared:
        tri = [t for a, b, c, d in QUADS for t in ((a, b, c), (a, c, d))]
        return Primitive(pos, np.array(tri).reshape(-1))
    verts, tris = [], []
    for a, b, c, d in QUADS:
        k = len(verts)
        verts += [pos[a], pos[b], pos[c], pos[d]]
        tris += [(k, k + 1, k + 2), (k, k + 2, k + 3)]
    return Primitive(np.array(verts), np.array(tris).reshape(-1))


def signed_volume(p: Primitive) -> float:
    tri = p.positions[p.triangles].astype(np.float64)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6)


def test_duplicate_vertices_are_welded_but_attribute_seams_kept():
    split = cube(shared=False)
    out, report = normalize(Model([split]))
    assert out.vertex_count == 8 and report.welded_vertices == 16
    # The same cube with a UV per face corner: positions repeat but UVs differ, so nothing welds.
    split.uvs = np.arange(48).reshape(24, 2) / 48
    out, report = normalize(Model([split]))
    assert out.vertex_count == 24 and report.welded_vertices == 0
    assert out.triangle_count == 12


def test_degenerate_and_duplicate_triangles_are_dropped():
    base = cube()
    extra = np.array([
        [0, 0, 1],  # repeated corner
        [0, 1, 3], [3, 0, 1],  # exact duplicates of the first triangle (one rotated)
    ])
    # a collinear triangle on a new vertex halfway along edge 0-1
    pos = np.vstack([base.positions, [[0, 0, 0.5]]])
    tri = np.vstack([base.triangles, extra, [[0, 8, 1]]])
    flipped = base.triangles[:1, ::-1]  # reverse winding: a deliberate back face, kept
    prim = Primitive(pos, np.vstack([tri, flipped]).reshape(-1))
    out, report = normalize(Model([prim]))
    assert report.degenerate_triangles == 2
    assert report.duplicate_triangles == 2
    assert out.triangle_count == 13
    assert not degenerate_mask(out.primitives[0].positions, out.primitives[0].triangles).any()


def test_tiny_floating_pieces_are_removed_above_a_configurable_size():
    body = cube()
    crumb = cube(size=(0.005, 0.005, 0.005), offset=(3, 0, 0))  # 0.3% of the diagonal
    chip = cube(size=(0.1, 0.1, 0.1), offset=(-2, 0, 0))  # ~4% of the diagonal
    model = Model([body, crumb, chip])
    out, report = normalize(model)
    assert report.pieces == 3 and report.floating_pieces_removed == 1
    assert report.floating_triangles_removed == 12 and out.triangle_count == 24
    out, report = normalize(model, min_piece_fraction=0.1)
    assert report.floating_pieces_removed == 2 and out.triangle_count == 12
    out, report = normalize(model, min_piece_fraction=0)
    assert report.floating_pieces_removed == 0 and out.triangle_count == 36


def test_scale_and_bottom_centre_pivot():
    model = Model([cube(size=(2, 4, 1), offset=(10, 5, -3))])
    out, report = normalize(model, target_height_m=1.8)
    lo, hi = out.bounds()
    assert np.allclose(lo, [-0.45, 0, -0.225], atol=1e-6) and np.allclose(hi, [0.45, 1.8, 0.225], atol=1e-6)
    assert report.scale == pytest.approx(0.45) and report.scaled_by == "height"
    assert report.size_m == pytest.approx([0.9, 1.8, 0.45])
    out, report = normalize(model)  # no target: glTF's meters are kept
    assert report.scale == 1.0 and np.allclose(out.size(), [2, 4, 1])
    flat = Model([Primitive(np.array([[0, 0, 0], [2, 0, 0], [0, 0, 1]]), np.array([0, 2, 1]))])
    out, report = normalize(flat, target_height_m=1.0)
    assert report.scaled_by == "largest_dimension" and np.allclose(out.size(), [1, 0, 0.5])


def test_z_up_is_rotated_to_y_up_without_turning_faces_inside_out():
    tall_in_z = Model([cube(size=(1, 1, 3))])
    out, report = normalize(tall_in_z, up_axis="+Z")
    assert np.allclose(out.size(), [1, 3, 1]) and report.up_axis == "+Z"
    assert signed_volume(out.primitives[0]) > 0
    with pytest.raises(ValueError, match="up_axis"):
        normalize(tall_in_z, up_axis="up")


def test_missing_normals_are_computed_smooth_and_outward_and_soups_get_flat_ones():
    # An icosphere-ish ball: a shared-vertex mesh, smooth normals point away from the centre.
    phi = (1 + 5**0.5) / 2
    v = np.array([[-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0], [0, -1, phi], [0, 1, phi],
                  [0, -1, -phi], [0, 1, -phi], [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1]], float)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    out, report = normalize(Model([Primitive(v, f.reshape(-1))]))
    p = out.primitives[0]
    centre = (p.positions.max(axis=0) + p.positions.min(axis=0)) / 2
    radial = p.positions - centre
    cos = np.einsum("ij,ij->i", p.normals, radial) / np.linalg.norm(radial, axis=1)
    assert cos.min() > 0.99 and np.allclose(np.linalg.norm(p.normals, axis=1), 1, atol=1e-6)
    assert report.normals_computed == 12
    # The same ball as a triangle soup: glTF's flat normals, one per face.
    soup = Primitive(v[f].reshape(-1, 3), np.arange(60))
    p = normalize(Model([soup]))[0].primitives[0]
    fn = face_normals(p.positions, p.indices)
    fn /= np.linalg.norm(fn, axis=1, keepdims=True)
    assert np.allclose(p.normals[p.triangles], fn[:, None, :], atol=1e-5)
    # Given normals are kept (made unit), broken ones replaced.
    given = cube()
    given.normals = np.tile([[0, 2, 0]], (8, 1)).astype(np.float32)
    given.normals[0] = np.nan
    p = normalize(Model([given]), min_piece_fraction=0)[0].primitives[0]
    assert np.allclose(np.linalg.norm(p.normals, axis=1), 1)
    assert np.isclose(p.normals[:, 1], 1).sum() == 7


def test_nonfinite_vertices_drop_their_triangles_and_empty_models_are_refused():
    prim = cube()
    pos = np.vstack([prim.positions, [[np.nan, 0, 0]]])
    # 1 of 13 triangles is above the default 5% share Kiln repairs; this test is about the dropping
    out, report = normalize(Model([Primitive(pos, np.concatenate([prim.indices, [0, 1, 8]]))]), max_nonfinite_share=0.1)
    assert report.nonfinite_triangles == 1 and out.triangle_count == 12
    assert np.isfinite(out.primitives[0].positions).all()
    with pytest.raises(NormalizeError, match="no triangles"):
        normalize(Model([]))
    with pytest.raises(NormalizeError, match="no triangle is left"):
        normalize(Model([Primitive(np.zeros((3, 3)), np.array([0, 1, 2]))]))


def test_primitives_sharing_a_material_merge_and_the_report_is_json():
    a, b = cube(), cube(offset=(2, 0, 0))
    c = cube(offset=(4, 0, 0))
    c.material = 1
    model = Model([a, b, c], [Material("wood"), Material("metal")])
    out, report = normalize(model)
    assert report.primitives_in == 3 and report.primitives_out == 2
    assert sorted(p.material for p in out.primitives) == [0, 1]
    assert json.loads(json.dumps(dataclasses.asdict(report)))["triangles_out"] == 36


def test_generated_highpoly_mesh_normalizes_to_a_clean_model(testdata):
    data = next((testdata / "highpoly").rglob("*.glb")).read_bytes()
    raw = read_glb(data)
    out, report = normalize(raw, target_height_m=1.0)
    assert report.triangles_in == 200_000 and report.normals_computed == report.vertices_out
    p = out.primitives[0]
    assert np.allclose(np.linalg.norm(p.normals, axis=1), 1, atol=1e-5)
    lo, hi = out.bounds()
    assert lo[1] == pytest.approx(0, abs=1e-6) and hi[1] == pytest.approx(1.0, abs=1e-5)
    assert abs(lo[0] + hi[0]) < 1e-5 and abs(lo[2] + hi[2]) < 1e-5


def grid(n: int = 10) -> Primitive:
    """A flat n x n quad grid in XY (2 n^2 triangles), with UVs."""
    xs = np.linspace(0, 1, n + 1)
    pos = np.array([[x, y, 0.0] for y in xs for x in xs])
    tri = []
    for j in range(n):
        for i in range(n):
            a = j * (n + 1) + i
            tri += [(a, a + 1, a + n + 2), (a, a + n + 2, a + n + 1)]
    return Primitive(pos, np.array(tri).reshape(-1), uvs=pos[:, :2].copy())


def test_nonfinite_corners_and_uvs_are_repaired_out_loud():
    prim = grid(10)  # 200 triangles; the corner vertex 10 sits in 1 of them
    prim.positions[10] = np.nan
    prim.uvs[5] = np.inf
    model, report = normalize(Model([prim]))
    assert report.nonfinite_triangles == 1 and report.nonfinite_share == pytest.approx(1 / 200)
    assert report.nonfinite_uvs == 1
    (out,) = model.primitives
    assert np.isfinite(out.positions).all() and np.isfinite(out.uvs).all()
    assert out.triangle_count == 199


def test_too_many_nonfinite_triangles_are_refused_with_the_share():
    prim = grid(10)
    prim.positions[::4] = np.inf  # most triangles touch one
    with pytest.raises(NormalizeError, match=r"triangles \(\d+\.\d%\) have NaN or infinite corners, more than the 5%"):
        normalize(Model([prim]))
    # the limit is an option: a caller that wants every salvageable triangle can raise it
    model, report = normalize(Model([prim]), max_nonfinite_share=1.0)
    assert report.nonfinite_triangles > 100 and model.triangle_count == 200 - report.nonfinite_triangles
