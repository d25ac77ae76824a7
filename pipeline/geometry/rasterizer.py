"""The renderer's and the bake's per-pixel passes compiled with numba (imported where they are used,
so only processes that render or bake load numba): visibility (`raster`), shading for
`render.render_variants` (`perspective`, `base_colour`, `unit_normals`, `detail_normals`, `shade`)
and the bake's per-texel passes (`uv_raster`, `texel_frames`, `hit_normals`, `encode_texels`,
`vertex_tangents`).

Visibility: for each pixel, the nearest triangle and its barycentrics (`render.rasterize`).

Per triangle, over the pixel centres of its bounding box: the same affine edge functions and depth
as the former vectorized numpy pass (coefficients relative to the box's first pixel centre, in
float32, and the same inside test), so the coverage and barycentrics are the same; a depth buffer
keeps the nearest fragment, and an exact depth tie goes to the higher triangle index, so the result
does not depend on the order of work. Timings against the numpy pass: `render.rasterize`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def raster(screen, depth, triangles, cull, width, height, tri, bary):
    """Fills `tri` ((h*w,) int32, -1 where empty) and `bary` ((h*w, 3) float32)."""
    nearest = np.full(width * height, -math.inf)
    eps = np.float32(-1e-6)
    one = np.float32(1.0)
    for t in range(triangles.shape[0]):
        i0, i1, i2 = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        x0, y0 = screen[i0, 0], screen[i0, 1]
        x1, y1 = screen[i1, 0], screen[i1, 1]
        x2, y2 = screen[i2, 0], screen[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)  # < 0: counter-clockwise (y up)
        if abs(area) <= 1e-12 or (cull[t] and area > 0):
            continue
        lo_x = max(int(math.ceil(min(x0, x1, x2) - 0.5)), 0)
        lo_y = max(int(math.ceil(min(y0, y1, y2) - 0.5)), 0)
        hi_x = min(int(math.floor(max(x0, x1, x2) - 0.5)), width - 1)
        hi_y = min(int(math.floor(max(y0, y1, y2) - 0.5)), height - 1)
        if hi_x < lo_x or hi_y < lo_y:
            continue
        inv = 1.0 / area
        ox, oy = lo_x + 0.5, lo_y + 0.5
        a0, b0 = -(y2 - y1) * inv, (x2 - x1) * inv
        c0 = ((x2 - x1) * (oy - y1) - (y2 - y1) * (ox - x1)) * inv
        a1, b1 = -(y0 - y2) * inv, (x0 - x2) * inv
        c1 = ((x0 - x2) * (oy - y2) - (y0 - y2) * (ox - x2)) * inv
        z0, z1, z2 = depth[i0], depth[i1], depth[i2]
        az = a0 * (z0 - z2) + a1 * (z1 - z2)
        bz = b0 * (z0 - z2) + b1 * (z1 - z2)
        cz = c0 * (z0 - z2) + c1 * (z1 - z2) + z2
        # float32 coefficients and offsets, as the vectorized pass computed them
        fa0, fb0, fc0 = np.float32(a0), np.float32(b0), np.float32(c0)
        fa1, fb1, fc1 = np.float32(a1), np.float32(b1), np.float32(c1)
        faz, fbz, fcz = np.float32(az), np.float32(bz), np.float32(cz)
        for yy in range(hi_y - lo_y + 1):
            dy = np.float32(yy)
            row = (lo_y + yy) * width + lo_x
            for xx in range(hi_x - lo_x + 1):
                dx = np.float32(xx)
                w0 = fa0 * dx + fb0 * dy + fc0
                w1 = fa1 * dx + fb1 * dy + fc1
                if w0 >= eps and w1 >= eps and w0 + w1 <= one - eps:
                    d = faz * dx + fbz * dy + fcz
                    p = row + xx
                    if d > nearest[p] or (d == nearest[p] and t > tri[p]):
                        nearest[p] = d
                        tri[p] = t
                        bary[p, 0] = w0
                        bary[p, 1] = w1
                        bary[p, 2] = one - w0 - w1


# -- shading: the per-pixel passes of `render.render_variants` -------------------------------------
# The same float32 arithmetic, in the same order, as the numpy passes they replaced (barycentric
# interpolation, clamp-to-edge bilinear lookup, Lambert shading, rounding to 8 bits). The one
# difference: numpy's matrix products (the normal into camera space, its dot with the light) went
# through BLAS, whose fused multiply-adds round differently in the last bit, so a channel can land
# one 8-bit step apart where a value sits on a rounding boundary: 4 of 1.9 million covered pixels,
# by 1, over every shared test GLB at two views, ortho and perspective (one-off comparison). A
# 768 px render of a reconstruction: 0.30 -> 0.03 s.


@njit(cache=True, nogil=True)
def _blend(values, k, c0, c1, c2, w0, w1, w2):
    """Column k of a vertex attribute blended over a triangle's corners (`model.interpolate`'s
    order of operations, in the weights' float type: float32 pixels, float64 texels)."""
    out = values[c0, k] * w0
    out += values[c1, k] * w1
    out += values[c2, k] * w2
    return out


@njit(cache=True, nogil=True)
def _bilinear(texture, u, v, out):
    """`render.sample_bilinear` at one UV (glTF: v down; clamp to edge) into `out`'s channels, from
    an 8-bit texture (`render.texture_bytes`) read as float32 values / 255, as sample_bilinear does."""
    denom = np.float32(255.0)
    th, tw = texture.shape[0], texture.shape[1]
    zero, half = np.float32(0.0), np.float32(0.5)
    sx = min(max(u * np.float32(tw) - half, zero), np.float32(tw - 1))
    sy = min(max(v * np.float32(th) - half, zero), np.float32(th - 1))
    if sx != sx:  # NaN UV: the first texel rather than an out-of-bounds read
        sx = zero
    if sy != sy:
        sy = zero
    x0, y0 = int(sx), int(sy)
    fx, fy = sx - np.float32(x0), sy - np.float32(y0)
    x1 = x0 + 1 if x0 < tw - 1 else x0
    y1 = y0 + 1 if y0 < th - 1 else y0
    for k in range(out.shape[0]):
        top, bottom = np.float32(texture[y0, x0, k]) / denom, np.float32(texture[y1, x0, k]) / denom
        top = top + (np.float32(texture[y0, x1, k]) / denom - top) * fx
        bottom = bottom + (np.float32(texture[y1, x1, k]) / denom - bottom) * fx
        out[k] = top + (bottom - top) * fy


@njit(cache=True, nogil=True)
def perspective(tri, bary, triangles, inv_w):
    """Perspective-correct barycentrics: each weighted by its corner's 1/w, renormalized."""
    out = bary.copy()
    h, w = tri.shape
    for y in range(h):
        for x in range(w):
            f = tri[y, x]
            if f < 0:
                continue
            b0 = bary[y, x, 0] * inv_w[triangles[f, 0]]
            b1 = bary[y, x, 1] * inv_w[triangles[f, 1]]
            b2 = bary[y, x, 2] * inv_w[triangles[f, 2]]
            s = b0 + b1 + b2
            out[y, x, 0], out[y, x, 1], out[y, x, 2] = b0 / s, b1 / s, b2 / s
    return out


@njit(cache=True, nogil=True)
def base_colour(tri, bary, triangles, tri_material, index, factor, opaque, uvs, texture, colour, alpha):
    """Material `index`'s pixels: `factor` times its texture sampled bilinearly at the interpolated
    UV (no texture: `texture` has no rows), into `colour` (h, w, 3) and `alpha` (h, w). The texture
    is 8-bit RGBA (`render.texture_bytes`)."""
    h, w = tri.shape
    one = np.float32(1.0)
    sample = np.empty(4, np.float32)
    for y in range(h):
        for x in range(w):
            f = tri[y, x]
            if f < 0 or tri_material[f] != index:
                continue
            r, g, b, a = factor[0], factor[1], factor[2], factor[3]
            if texture.shape[0] > 0:
                c0, c1, c2 = triangles[f, 0], triangles[f, 1], triangles[f, 2]
                w0, w1, w2 = bary[y, x, 0], bary[y, x, 1], bary[y, x, 2]
                _bilinear(texture, _blend(uvs, 0, c0, c1, c2, w0, w1, w2), _blend(uvs, 1, c0, c1, c2, w0, w1, w2),
                          sample)
                r, g, b, a = r * sample[0], g * sample[1], b * sample[2], a * sample[3]
            colour[y, x, 0], colour[y, x, 1], colour[y, x, 2] = r, g, b
            alpha[y, x] = one if opaque else a


@njit(cache=True, nogil=True)
def shade(tri, normals, basis, light, lighting, colour, alpha, out):
    """Lambert-shade `colour` with `normals` (one unit normal per covered pixel in row order:
    `unit_normals`, perturbed by `detail_normals`) and write the covered pixels of `out` (h, w, 4)
    as 8 bits."""
    h, w = tri.shape
    zero, one = np.float32(0.0), np.float32(1.0)
    ambient, diffuse = np.float32(0.35), np.float32(0.75)
    scale, half, top = np.float32(255), np.float32(0.5), np.float32(255)
    j = 0
    for y in range(h):
        for x in range(w):
            if tri[y, x] < 0:
                continue
            r, g, b = colour[y, x, 0], colour[y, x, 1], colour[y, x, 2]
            if lighting:
                n0, n1, n2 = normals[j, 0], normals[j, 1], normals[j, 2]
                e0 = n0 * basis[0, 0] + n1 * basis[1, 0] + n2 * basis[2, 0]
                e1 = n0 * basis[0, 1] + n1 * basis[1, 1] + n2 * basis[2, 1]
                e2 = n0 * basis[0, 2] + n1 * basis[1, 2] + n2 * basis[2, 2]
                if e2 < zero:  # two-sided: a back face seen through a hole still gets light
                    e0, e1, e2 = -e0, -e1, -e2
                s = ambient + diffuse * min(max(e0 * light[0] + e1 * light[1] + e2 * light[2], zero), one)
                r, g, b = r * s, g * s, b * s
            out[y, x, 0] = np.uint8(min(max(r * scale + half, zero), top))
            out[y, x, 1] = np.uint8(min(max(g * scale + half, zero), top))
            out[y, x, 2] = np.uint8(min(max(b * scale + half, zero), top))
            out[y, x, 3] = np.uint8(min(max(alpha[y, x] * scale + half, zero), top))
            j += 1


@njit(cache=True, nogil=True)
def uv_raster(px, size, owner, bary):
    """The bake's texel pass (`bake._rasterize`): triangles `px` (m, 3, 2) in texel coordinates
    (centres at integers), float64 throughout; a texel whose centre is inside (within -1e-4) goes to
    the highest-numbered triangle covering it. Fills `owner` (size*size,) and `bary` (size*size, 3)."""
    eps = -1e-4
    for t in range(px.shape[0]):
        ax, ay = px[t, 0, 0], px[t, 0, 1]
        v0x, v0y = px[t, 1, 0] - ax, px[t, 1, 1] - ay
        v1x, v1y = px[t, 2, 0] - ax, px[t, 2, 1] - ay
        den = v0x * v1y - v1x * v0y
        if not abs(den) > 1e-12:
            continue
        k = 1.0 / den
        lo_x = min(max(math.floor(min(min(px[t, 0, 0], px[t, 1, 0]), px[t, 2, 0])), 0), size - 1)
        lo_y = min(max(math.floor(min(min(px[t, 0, 1], px[t, 1, 1]), px[t, 2, 1])), 0), size - 1)
        hi_x = min(max(math.ceil(max(max(px[t, 0, 0], px[t, 1, 0]), px[t, 2, 0])), 0), size - 1)
        hi_y = min(max(math.ceil(max(max(px[t, 0, 1], px[t, 1, 1]), px[t, 2, 1])), 0), size - 1)
        for y in range(lo_y, hi_y + 1):
            dy = y - ay
            for x in range(lo_x, hi_x + 1):
                dx = x - ax
                l1 = (dx * v1y - v1x * dy) * k
                l2 = (v0x * dy - dx * v0y) * k
                l0 = 1.0 - l1 - l2
                if l0 >= eps and l1 >= eps and l2 >= eps:
                    texel = y * size + x
                    owner[texel] = t
                    bary[texel, 0], bary[texel, 1], bary[texel, 2] = l0, l1, l2


@njit(cache=True, nogil=True)
def _unit3(x, y, z):
    length = max(np.sqrt(x * x + y * y + z * z), np.float32(1e-20))
    return x / length, y / length, z / length


@njit(cache=True, nogil=True)
def detail_normals(tri, bary, triangles, tri_material, index, uvs, tangents, texels, scale, given):
    """The renderer's `bake.SurfaceDetail.apply`: for the covered pixels (row order) of material
    `index`, the unit normal in `given` (k, 3; `unit_normals`) perturbed in place by its normal map
    (`bake.perturb_normals`: glTF's tangent frame, the same float32 arithmetic)."""
    h, w = tri.shape
    zero, two, one = np.float32(0.0), np.float32(2.0), np.float32(1.0)
    frame, m = np.empty(4, np.float32), np.empty(4, np.float32)
    j = -1
    for y in range(h):
        for x in range(w):
            f = tri[y, x]
            if f < 0:
                continue
            j += 1
            if tri_material[f] != index:
                continue
            c0, c1, c2 = triangles[f, 0], triangles[f, 1], triangles[f, 2]
            w0, w1, w2 = bary[y, x, 0], bary[y, x, 1], bary[y, x, 2]
            for k in range(4):
                frame[k] = _blend(tangents, k, c0, c1, c2, w0, w1, w2)
            _bilinear(texels, _blend(uvs, 0, c0, c1, c2, w0, w1, w2), _blend(uvs, 1, c0, c1, c2, w0, w1, w2), m)
            for k in range(3):
                m[k] = m[k] * two - one
            m[0] *= scale
            m[1] *= scale
            n0, n1, n2 = given[j, 0], given[j, 1], given[j, 2]
            d = n0 * frame[0] + n1 * frame[1] + n2 * frame[2]
            t0, t1, t2 = _unit3(frame[0] - n0 * d, frame[1] - n1 * d, frame[2] - n2 * d)
            sign = -one if frame[3] < zero else one
            b0, b1, b2 = (n1 * t2 - n2 * t1) * sign, (n2 * t0 - n0 * t2) * sign, (n0 * t1 - n1 * t0) * sign
            given[j, 0], given[j, 1], given[j, 2] = _unit3(m[0] * t0 + m[1] * b0 + m[2] * n0,
                                                           m[0] * t1 + m[1] * b1 + m[2] * n1,
                                                           m[0] * t2 + m[1] * b2 + m[2] * n2)


@njit(cache=True, nogil=True)
def unit_normals(tri, bary, triangles, normals):
    """Per covered pixel (row order), the interpolated vertex normal made unit length (k, 3)."""
    h, w = tri.shape
    count = 0
    for y in range(h):
        for x in range(w):
            if tri[y, x] >= 0:
                count += 1
    out = np.empty((count, 3), np.float32)
    tiny = np.float32(1e-12)
    j = 0
    for y in range(h):
        for x in range(w):
            f = tri[y, x]
            if f < 0:
                continue
            c0, c1, c2 = triangles[f, 0], triangles[f, 1], triangles[f, 2]
            w0, w1, w2 = bary[y, x, 0], bary[y, x, 1], bary[y, x, 2]
            for k in range(3):
                out[j, k] = _blend(normals, k, c0, c1, c2, w0, w1, w2)
            length = max(np.sqrt(out[j, 0] * out[j, 0] + out[j, 1] * out[j, 1] + out[j, 2] * out[j, 2]), tiny)
            out[j, 0], out[j, 1], out[j, 2] = out[j, 0] / length, out[j, 1] / length, out[j, 2] / length
            j += 1
    return out


# ----------------------------------------------------------------------------------------------
# The bake's per-texel passes (`bake.bake_normal_map`), float64 in the numpy passes' order of
# operations (`_blend`, as `model.interpolate`; `_unit64`, as `bake._unit`: x / max(|x|, 1e-20)).


@njit(cache=True, nogil=True)
def _unit64(x, y, z):
    length = max(math.sqrt(x * x + y * y + z * z), 1e-20)
    return x / length, y / length, z / length


@njit(cache=True, nogil=True)
def texel_frames(positions, normals, tangents, corners, bary):
    """Per covered texel (its triangle's `corners` (k, 3), barycentrics (k, 3)): the low surface's
    point, unit normal, unit tangent (Gram-Schmidt against the normal) and bitangent
    (w * normal x tangent, w the tangent's handedness), each (k, 3) float64."""
    k = corners.shape[0]
    point, normal = np.empty((k, 3)), np.empty((k, 3))
    tangent, bitangent = np.empty((k, 3)), np.empty((k, 3))
    for i in range(k):
        c0, c1, c2 = corners[i, 0], corners[i, 1], corners[i, 2]
        w0, w1, w2 = bary[i, 0], bary[i, 1], bary[i, 2]
        for d in range(3):
            point[i, d] = _blend(positions, d, c0, c1, c2, w0, w1, w2)
        n0, n1, n2 = _unit64(_blend(normals, 0, c0, c1, c2, w0, w1, w2), _blend(normals, 1, c0, c1, c2, w0, w1, w2),
                             _blend(normals, 2, c0, c1, c2, w0, w1, w2))
        t0, t1, t2 = (_blend(tangents, 0, c0, c1, c2, w0, w1, w2), _blend(tangents, 1, c0, c1, c2, w0, w1, w2),
                      _blend(tangents, 2, c0, c1, c2, w0, w1, w2))
        dot = n0 * t0 + n1 * t1 + n2 * t2
        t0, t1, t2 = _unit64(t0 - n0 * dot, t1 - n1 * dot, t2 - n2 * dot)
        handed = -1.0 if _blend(tangents, 3, c0, c1, c2, w0, w1, w2) < 0 else 1.0
        normal[i, 0], normal[i, 1], normal[i, 2] = n0, n1, n2
        tangent[i, 0], tangent[i, 1], tangent[i, 2] = t0, t1, t2
        bitangent[i, 0] = (n1 * t2 - n2 * t1) * handed
        bitangent[i, 1] = (n2 * t0 - n0 * t2) * handed
        bitangent[i, 2] = (n0 * t1 - n1 * t0) * handed
    return point, normal, tangent, bitangent


@njit(cache=True, nogil=True)
def hit_normals(normals, triangles, prim, u, v):
    """The high surface's unit shading normal at each ray hit (triangle `prim`, embree's u, v)."""
    k = prim.shape[0]
    out = np.empty((k, 3))
    for i in range(k):
        a, b, c = triangles[prim[i], 0], triangles[prim[i], 1], triangles[prim[i], 2]
        h1, h2 = np.float64(u[i]), np.float64(v[i])
        h0 = 1.0 - (h1 + h2)
        out[i, 0], out[i, 1], out[i, 2] = _unit64(h0 * normals[a, 0] + h1 * normals[b, 0] + h2 * normals[c, 0],
                                                  h0 * normals[a, 1] + h1 * normals[b, 1] + h2 * normals[c, 1],
                                                  h0 * normals[a, 2] + h1 * normals[b, 2] + h2 * normals[c, 2])
    return out


@njit(cache=True, nogil=True)
def encode_texels(high, normal, tangent, bitangent):
    """Per texel: the high normal in the low tangent frame, encoded as 8-bit RGB (n * 0.5 + 0.5,
    z kept >= 1e-3: a normal map cannot point into the surface), and the angle (degrees) of the
    high normal to the low normal (plain) and to the decoded map's normal (baked)."""
    k = high.shape[0]
    encoded = np.empty((k, 3), np.uint8)
    plain, baked = np.empty(k), np.empty(k)
    for i in range(k):
        h0, h1, h2 = high[i, 0], high[i, 1], high[i, 2]
        x = h0 * tangent[i, 0] + h1 * tangent[i, 1] + h2 * tangent[i, 2]
        y = h0 * bitangent[i, 0] + h1 * bitangent[i, 1] + h2 * bitangent[i, 2]
        z = max(h0 * normal[i, 0] + h1 * normal[i, 1] + h2 * normal[i, 2], 1e-3)
        x, y, z = _unit64(x, y, z)
        e0 = min(max(np.rint((x * 0.5 + 0.5) * 255.0), 0.0), 255.0)
        e1 = min(max(np.rint((y * 0.5 + 0.5) * 255.0), 0.0), 255.0)
        e2 = min(max(np.rint((z * 0.5 + 0.5) * 255.0), 0.0), 255.0)
        encoded[i, 0], encoded[i, 1], encoded[i, 2] = np.uint8(e0), np.uint8(e1), np.uint8(e2)
        d0, d1, d2 = _unit64(e0 / 255.0 * 2.0 - 1.0, e1 / 255.0 * 2.0 - 1.0, e2 / 255.0 * 2.0 - 1.0)
        s0, s1, s2 = _unit64(d0 * tangent[i, 0] + d1 * bitangent[i, 0] + d2 * normal[i, 0],
                             d0 * tangent[i, 1] + d1 * bitangent[i, 1] + d2 * normal[i, 1],
                             d0 * tangent[i, 2] + d1 * bitangent[i, 2] + d2 * normal[i, 2])
        cos_plain = h0 * normal[i, 0] + h1 * normal[i, 1] + h2 * normal[i, 2]
        cos_baked = h0 * s0 + h1 * s1 + h2 * s2
        plain[i] = math.degrees(math.acos(min(max(cos_plain, -1.0), 1.0)))
        baked[i] = math.degrees(math.acos(min(max(cos_baked, -1.0), 1.0)))
    return encoded, plain, baked


@njit(cache=True, nogil=True)
def _angle(ax, ay, az, bx, by, bz):
    ax, ay, az = _unit64(ax, ay, az)
    bx, by, bz = _unit64(bx, by, bz)
    return math.acos(min(max(ax * bx + ay * by + az * bz, -1.0), 1.0))


@njit(cache=True, nogil=True)
def vertex_tangents(positions, triangles, uvs, normals):
    """`bake.tangent_frames`' loops over float64 positions, triangles, UVs and normals: per vertex,
    the unit tangent ((n, 3)) and the sign of its handedness ((n,)), from each corner's UV
    derivatives weighted by the corner's angle (MikkTSpace-style)."""
    n = positions.shape[0]
    t_acc, b_acc = np.zeros((n, 3)), np.zeros((n, 3))
    m = triangles.shape[0]
    sdir, tdir, angles = np.empty((m, 3)), np.empty((m, 3)), np.empty((m, 3))
    for f in range(m):
        i0, i1, i2 = triangles[f, 0], triangles[f, 1], triangles[f, 2]
        du1, dv1 = uvs[i1, 0] - uvs[i0, 0], uvs[i1, 1] - uvs[i0, 1]
        du2, dv2 = uvs[i2, 0] - uvs[i0, 0], uvs[i2, 1] - uvs[i0, 1]
        det = du1 * dv2 - du2 * dv1
        r = 1.0 / det if abs(det) > 1e-20 else 0.0
        for d in range(3):
            e1, e2 = positions[i1, d] - positions[i0, d], positions[i2, d] - positions[i0, d]
            sdir[f, d] = (e1 * dv2 - e2 * dv1) * r  # dP/du
            tdir[f, d] = -((e2 * du1 - e1 * du2) * r)  # -dP/dv: the map's +Y, up the image
        # unit directions, once per triangle (each of its corners adds them)
        sdir[f, 0], sdir[f, 1], sdir[f, 2] = _unit64(sdir[f, 0], sdir[f, 1], sdir[f, 2])
        tdir[f, 0], tdir[f, 1], tdir[f, 2] = _unit64(tdir[f, 0], tdir[f, 1], tdir[f, 2])
        for k in range(3):
            a, b, c = triangles[f, k], triangles[f, (k + 1) % 3], triangles[f, (k + 2) % 3]
            angles[f, k] = _angle(positions[b, 0] - positions[a, 0], positions[b, 1] - positions[a, 1],
                                  positions[b, 2] - positions[a, 2], positions[c, 0] - positions[a, 0],
                                  positions[c, 1] - positions[a, 1], positions[c, 2] - positions[a, 2])
    for k in range(3):  # corner by corner, triangle by triangle: numpy's add.at order
        for f in range(m):
            v, w = triangles[f, k], angles[f, k]
            for d in range(3):
                t_acc[v, d] += sdir[f, d] * w
                b_acc[v, d] += tdir[f, d] * w
    tangent, handed = np.empty((n, 3)), np.empty(n)
    for v in range(n):
        n0, n1, n2 = _unit64(normals[v, 0], normals[v, 1], normals[v, 2])
        d = n0 * t_acc[v, 0] + n1 * t_acc[v, 1] + n2 * t_acc[v, 2]
        t0, t1, t2 = t_acc[v, 0] - n0 * d, t_acc[v, 1] - n1 * d, t_acc[v, 2] - n2 * d
        if not math.sqrt(t0 * t0 + t1 * t1 + t2 * t2) > 1e-12:
            # no usable UV derivative: any direction orthogonal to the normal
            f0, f1, f2 = (1.0, 0.0, 0.0) if abs(n0) < 0.9 else (0.0, 1.0, 0.0)
            d = n0 * f0 + n1 * f1 + n2 * f2
            t0, t1, t2 = f0 - n0 * d, f1 - n1 * d, f2 - n2 * d
        t0, t1, t2 = _unit64(t0, t1, t2)
        tangent[v, 0], tangent[v, 1], tangent[v, 2] = t0, t1, t2
        side = (n1 * t2 - n2 * t1) * b_acc[v, 0] + (n2 * t0 - n0 * t2) * b_acc[v, 1] + (n0 * t1 - n1 * t0) * b_acc[v, 2]
        handed[v] = -1.0 if side < 0.0 else 1.0
    return tangent, handed
