"""The renderer's visibility pass compiled with numba: for each pixel, the nearest triangle and its
barycentrics (`render.rasterize` calls it; imported there on first use, so only processes that
render load numba).

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
