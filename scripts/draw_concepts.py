"""Draw Kiln's own sample concept art into data/concepts/ (or OUT_DIR).

    .venv/bin/python scripts/draw_concepts.py [OUT_DIR]

Six props, drawn the way a concept artist hands them over: one object per 512x512 RGBA PNG, centred,
shaded (lambert + specular + rim light + ink outline), textured, on a transparent background.
`lantern/` is a turnaround set (front, right side, back) of one object with identical vertical framing.
`rune_sword/` is one object in several detached parts (a flat blade with crystals, a ring and orbs
floating around it); `shield/` is flat, which no silhouette can tell (its asset.toml says so).

Everything is analytic 2D signed distance fields in numpy: coverage from the SDF gives anti-aliased
edges without supersampling, and fake 3D normals (sphere, cylinder, bevel) give the shading. No
randomness except fixed seeds, so every run writes the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

S = 512
Y, X = (np.mgrid[0:S, 0:S].astype(np.float64) + 0.5)

LIGHT = np.array([-0.5, -0.65, 0.58])  # upper-left, towards the viewer (image y points down)
LIGHT /= np.linalg.norm(LIGHT)
HALF = LIGHT + np.array([0.0, 0.0, 1.0])
HALF /= np.linalg.norm(HALF)
RIM_DIR = np.array([0.85, -0.25])  # back light from the right, slightly above
RIM_DIR /= np.linalg.norm(RIM_DIR)


# ---------------------------------------------------------------- signed distance fields (pixels)

def box(cx, cy, hw, hh, r=0.0):
    qx = np.abs(X - cx) - hw + r
    qy = np.abs(Y - cy) - hh + r
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r


def circle(cx, cy, r):
    return np.hypot(X - cx, Y - cy) - r


def ellipse(cx, cy, rx, ry):
    # Quilez's first-order approximation: exact on the boundary, good enough for a 1 px AA ramp.
    px, py = X - cx, Y - cy
    k0 = np.hypot(px / rx, py / ry)
    k1 = np.hypot(px / rx**2, py / ry**2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def segment(ax, ay, bx, by, r):
    px, py, ex, ey = X - ax, Y - ay, bx - ax, by - ay
    h = np.clip((px * ex + py * ey) / (ex * ex + ey * ey), 0, 1)
    return np.hypot(px - ex * h, py - ey * h) - r


def polygon(pts):
    pts = np.asarray(pts, dtype=np.float64)
    d = (X - pts[0, 0]) ** 2 + (Y - pts[0, 1]) ** 2
    s = np.ones_like(X)
    for i in range(len(pts)):
        vi, vj = pts[i], pts[i - 1]
        ex, ey = vj - vi
        wx, wy = X - vi[0], Y - vi[1]
        h = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        d = np.minimum(d, (wx - ex * h) ** 2 + (wy - ey * h) ** 2)
        c1, c2, c3 = Y >= vi[1], Y < vj[1], ex * wy > ey * wx
        flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        s = np.where(flip, -s, s)
    return s * np.sqrt(d)


def ring(cx, cy, r, thick):
    return np.abs(circle(cx, cy, r)) - thick / 2


def smin(a, b, k):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b * (1 - h) + a * h - k * h * (1 - h)


def cov(d, soft=1.0):
    """Coverage of the inside of an SDF; soft > 1 blurs (for shadows and glows)."""
    return np.clip(0.5 - d / soft, 0, 1)


def rescale(d):
    """Turn any implicit field into a pixel-distance estimate, so its edge anti-aliases to ~1 px."""
    gy, gx = np.gradient(d)
    return d / np.maximum(np.hypot(gx, gy), 1e-6)


# ---------------------------------------------------------------- normals and shading

def normalize(nx, ny, nz):
    n = np.sqrt(nx * nx + ny * ny + nz * nz)
    return nx / n, ny / n, nz / n


def sphere_n(cx, cy, rx, ry):
    nx = (X - cx) / rx
    ny = (Y - cy) / ry
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0.02, 1))
    return normalize(nx, ny, nz)


def cyl_n(cx, r, tilt=0.0):
    """Vertical cylinder seen from the front; tilt < 0 leans the normal up (a cone's slope)."""
    nx = np.clip((X - cx) / r, -0.995, 0.995)
    nz = np.sqrt(1 - nx * nx)
    return normalize(nx, np.full_like(X, tilt), nz)


def bevel_n(d, width, strength=1.2, base=(0.0, 0.0, 1.0)):
    """A flat face whose border (width px) rounds off outwards: reads as a bevelled board or plate."""
    gy, gx = np.gradient(d)
    g = np.maximum(np.hypot(gx, gy), 1e-6)
    t = np.clip(1 + d / width, 0, 1) ** 1.5 * strength
    return normalize(base[0] + gx / g * t, base[1] + gy / g * t, base[2] + 0 * t)


def shade(base, n, amb=0.38, diff=0.72, spec=0.0, shin=24.0, spec_col=(1.0, 0.97, 0.9)):
    nx, ny, nz = n
    lam = np.clip(nx * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2], 0, 1)
    base = np.asarray(base, dtype=np.float64)
    col = base * (amb + diff * lam)[..., None]
    if spec:
        nh = np.clip(nx * HALF[0] + ny * HALF[1] + nz * HALF[2], 0, 1)
        col = col + spec * (nh**shin)[..., None] * np.asarray(spec_col)
    return col


def mix(a, b, t):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim == 2:
        t = t[..., None]
    return a * (1 - t) + b * t


def waves(u, v, seed, n=6, fu=(0.004, 0.02), fv=(0.01, 0.05)):
    """Smooth deterministic noise in [-1, 1] from a few random sine waves (any coordinates, any angle)."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(u)
    for k in range(n):
        a = 1.0 / (k + 1)
        out += a * np.sin(u * rng.uniform(*fu) * (1 + k) + v * rng.uniform(*fv) * (1 + k) * rng.choice([-1, 1])
                          + rng.uniform(0, 2 * np.pi))
    return out / sum(1.0 / (k + 1) for k in range(n))


def speckle(seed, cell=3):
    """Fine value noise in [0, 1] (pores, grit): a seeded low-res grid upsampled bicubically."""
    rng = np.random.default_rng(seed)
    lo = rng.random((S // cell, S // cell)).astype(np.float32)
    return np.clip(np.asarray(Image.fromarray(lo, "F").resize((S, S), Image.BICUBIC), dtype=np.float64), 0, 1)


def wood(u, v, base, seed, spacing=9.0):
    """Wood grain along u: warped growth lines across v, plus long streaks."""
    warp = waves(u, v, seed, fu=(0.006, 0.02), fv=(0.002, 0.01))
    lines = 0.5 + 0.5 * np.sin((v + 14 * warp) * (2 * np.pi / spacing))
    streak = waves(u * 0.3, v * 3.0, seed + 1, n=5, fu=(0.01, 0.03), fv=(0.02, 0.06))
    t = lines**4 * 0.22 + streak * 0.07
    return np.asarray(base) * (1 - t)[..., None]


# ---------------------------------------------------------------- canvas

class Canvas:
    """Premultiplied RGBA float canvas."""

    def __init__(self):
        self.rgb = np.zeros((S, S, 3))
        self.a = np.zeros((S, S))

    def fill(self, d, color, soft=1.0, opacity=1.0):
        c = cov(d, soft) * opacity
        color = np.broadcast_to(np.asarray(color, dtype=np.float64), (S, S, 3))
        self.rgb = self.rgb * (1 - c)[..., None] + color * c[..., None]
        self.a = self.a * (1 - c) + c
        return c

    def tint(self, d, color, amount, soft=1.0):
        """Blend a colour over what is already painted without growing the silhouette."""
        c = (cov(d, soft) * amount)[..., None]
        color = np.broadcast_to(np.asarray(color, dtype=np.float64), (S, S, 3))
        self.rgb = self.rgb * (1 - c) + color * self.a[..., None] * c

    def shadow(self, d, amount=0.45, soft=8.0, dx=5.0, dy=7.0):
        """Soft cast shadow of a shape (given as its SDF) offset down-right, only onto existing paint."""
        shifted = np.roll(np.roll(d, int(dy), axis=0), int(dx), axis=1)
        self.rgb *= 1 - (cov(shifted - soft * 0.3, soft) * amount)[..., None]

    def add(self, color, amount):
        self.rgb += np.asarray(color) * (amount * self.a)[..., None]

    def finish(self, sil, rim_col=(0.55, 0.75, 1.0), rim=0.55, rim_w=7.0, ink=(0.1, 0.07, 0.06), ink_w=2.2):
        """Rim light along the silhouette's right/top edge, then a thin ink outline."""
        gy, gx = np.gradient(sil)
        g = np.maximum(np.hypot(gx, gy), 1e-6)
        facing = np.clip((gx * RIM_DIR[0] + gy * RIM_DIR[1]) / g, 0, 1)
        band = np.clip(1 + sil / rim_w, 0, 1) ** 2
        self.add(rim_col, rim * band * facing**1.5)
        line = np.clip(sil + ink_w + 0.5, 0, 1)
        self.rgb = self.rgb * (1 - 0.85 * line)[..., None] + np.asarray(ink) * (0.85 * line * self.a)[..., None]

    def save(self, path: Path):
        a = np.clip(self.a, 0, 1)
        rgb = np.where(a[..., None] > 1e-4, self.rgb / np.maximum(a, 1e-4)[..., None], 0)
        out = np.dstack([np.clip(rgb, 0, 1), a])
        out = (out * 255 + 0.5).astype(np.uint8)
        out[a < 1.0 / 255] = 0  # fully transparent pixels carry no stray colour
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out, "RGBA").save(path, format="PNG", optimize=True)


# ---------------------------------------------------------------- props

def draw_crate() -> Canvas:
    cv = Canvas()
    cx, cy, h = 256.0, 258.0, 212.0  # outer half size: the crate fills ~83% of the frame
    fw = 54.0  # frame board width
    outer = box(cx, cy, h, h, 5)
    inner = box(cx, cy, h - fw, h - fw)

    # Recessed horizontal planks behind the frame.
    n_planks = 5
    top, bot = cy - h + fw, cy + h - fw
    ph = (bot - top) / n_planks
    cv.fill(outer, (0.16, 0.09, 0.05))  # dark gaps between planks
    for i in range(n_planks):
        pcy = top + ph * (i + 0.5)
        d = box(cx, pcy, h - 2, ph / 2 - 2.0, 2)
        base = np.array([0.56, 0.36, 0.2]) * (0.9 + 0.2 * ((i * 37) % 7) / 6)
        col = shade(wood(X, Y - pcy, base, seed=10 + i), bevel_n(d, 5, 1.0), amb=0.45, diff=0.6)
        cv.fill(d, col * 0.82)  # recessed: darker than the frame
        # a knot on two of the planks
        if i in (1, 3):
            kx = cx + (-60 if i == 1 else 85)
            kd = ellipse(kx, pcy + 3, 14, 7)
            cv.tint(np.abs(kd) - 2.5, (0.25, 0.13, 0.06), 0.6, soft=1.5)
            cv.tint(ellipse(kx, pcy + 3, 6, 3), (0.2, 0.1, 0.05), 0.8)

    frame = [box(cx, cy - h + fw / 2, h, fw / 2, 4), box(cx, cy + h - fw / 2, h, fw / 2, 4),
             box(cx - h + fw / 2, cy, fw / 2, h, 4), box(cx + h - fw / 2, cy, fw / 2, h, 4)]
    # Diagonal brace, bottom-left to top-right, clipped to the opening.
    a0 = (cx - h + fw, cy + h - fw)
    a1 = (cx + h - fw, cy - h + fw)
    brace = np.maximum(segment(*a0, *a1, 27), inner - 1)
    cv.shadow(brace, 0.5, 9)
    diag_u = (X - Y) / np.sqrt(2)
    diag_v = (X + Y) / np.sqrt(2) - (a0[0] + a0[1]) / np.sqrt(2)
    col = shade(wood(diag_u, diag_v, (0.66, 0.45, 0.26), seed=30), bevel_n(segment(*a0, *a1, 27), 6), amb=0.42)
    cv.fill(brace, col)

    frame_all = np.minimum.reduce(frame)
    cv.shadow(np.maximum(frame_all, -outer - 0), 0.55, 10)
    woods = [(0.7, 0.48, 0.27), (0.66, 0.45, 0.25), (0.72, 0.5, 0.29), (0.68, 0.46, 0.26)]
    for k, (d, base) in enumerate(zip(frame, woods)):
        horiz = k < 2
        u, v = (X, Y - cy) if horiz else (Y, X - cx)
        col = shade(wood(u, v, base, seed=40 + k), bevel_n(d, 6, 1.3), amb=0.42)
        if horiz:  # side boards butt against the top/bottom boards: draw horizontals last
            continue
        cv.fill(d, col)
    for k in (0, 1):
        d = frame[k]
        col = shade(wood(X, Y - cy, woods[k], seed=40 + k), bevel_n(d, 6, 1.3), amb=0.42)
        cv.fill(d, col)

    # Iron corner brackets with rivets.
    iron = (0.36, 0.36, 0.38)
    L, t = 100.0, fw + 6
    brackets = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            ox, oy = cx + sx * h, cy + sy * h
            arm1 = box(ox - sx * L / 2, oy - sy * t / 2, L / 2 + 2, t / 2 + 2, 3)
            arm2 = box(ox - sx * t / 2, oy - sy * L / 2, t / 2 + 2, L / 2 + 2, 3)
            corner = np.maximum(smin(arm1, arm2, 12), outer)
            brackets.append(corner)
    allb = np.minimum.reduce(brackets)
    cv.shadow(allb, 0.6, 7, 4, 5)
    grit = speckle(7, 2)
    iron_col = shade(np.asarray(iron) * (0.85 + 0.3 * grit)[..., None], bevel_n(allb, 5, 1.4), amb=0.35,
                     diff=0.75, spec=0.55, shin=30)
    cv.fill(allb, iron_col)
    # bracket edge wear: lighter worn metal right on the bevel
    cv.tint(np.maximum(allb, -allb - 2.0), (0.62, 0.62, 0.64), 0.35)
    rivets = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            ox, oy = cx + sx * (h - t / 2 + 1), cy + sy * (h - t / 2 + 1)
            for px, py in ((ox, oy), (ox - sx * 60, oy), (ox, oy - sy * 60)):
                rivets.append((px, py))
    for px, py in rivets:
        d = circle(px, py, 7)
        cv.shadow(d, 0.5, 3, 2, 3)
        cv.fill(d, shade((0.5, 0.5, 0.52), sphere_n(px, py, 8, 8), amb=0.3, spec=0.9, shin=40))

    # Large-scale light falloff across the face: top-left brighter.
    fall = np.clip(((X - cx) + (Y - cy)) / (4 * h), -0.5, 0.5)
    cv.rgb *= (1.0 - 0.35 * fall)[..., None]
    cv.finish(outer, rim_col=(0.6, 0.8, 1.0), rim=0.45, rim_w=9)
    return cv


def draw_potion() -> Canvas:
    cv = Canvas()
    cx = 256.0
    bcy, br = 322.0, 160.0  # round body
    body = circle(cx, bcy, br)
    neck = box(cx, 128, 46, 52, 4)
    lip = box(cx, 82, 60, 13, 9)
    glass = np.minimum(smin(body, neck, 30), lip)
    cork = polygon([(cx - 42, 76), (cx + 42, 76), (cx + 50, 26), (cx - 50, 26)])
    cork = np.minimum(cork + 2, box(cx, 30, 50, 8, 8) )
    sil = np.minimum(glass, cork)

    # Glass: thick, tinted edges (fresnel), clearer middle.
    edge = np.clip(1 + glass / 26, 0, 1)
    glass_col = mix((0.62, 0.74, 0.78), (0.28, 0.4, 0.48), edge**1.5)
    cv.fill(glass, shade(glass_col, sphere_n(cx, bcy, br * 1.3, br * 1.6), amb=0.7, diff=0.4))

    # Liquid inside the body, up to a level with a visible surface ellipse.
    level = 218.0
    inner = circle(cx, bcy, br - 13)
    liquid = np.maximum(inner, level - Y)
    glow = np.exp(-((X - cx + 10) ** 2 + (Y - 370) ** 2) / (2 * 95.0**2))
    depth = np.clip(-inner / 60, 0, 1)
    liq = mix((0.22, 0.02, 0.2), (0.95, 0.18, 0.6), 0.35 + 0.65 * glow * depth**0.5)
    liq = liq * (0.8 + 0.25 * (1 - edge))[..., None]
    cv.fill(liquid, liq)
    sw = np.sqrt(max((br - 13) ** 2 - (level - bcy) ** 2, 1))
    surface = np.maximum(ellipse(cx, level, sw, 12), inner)
    cv.fill(surface, mix((0.98, 0.45, 0.78), (0.7, 0.12, 0.45), np.clip((X - cx + sw) / (2 * sw), 0, 1)))
    cv.tint(np.abs(ellipse(cx, level, sw, 12)) - 1.2, (1.0, 0.75, 0.9), 0.7)
    # Bubbles rising through the liquid.
    rng = np.random.default_rng(5)
    for _ in range(14):
        bx, by = cx + rng.uniform(-95, 95), rng.uniform(250, 440)
        r = rng.uniform(3, 9)
        if np.hypot(bx - cx, by - bcy) > br - 30:
            continue
        cv.tint(np.abs(circle(bx, by, r)) - 1.0, (1.0, 0.8, 0.95), 0.8)
        cv.tint(circle(bx - r * 0.35, by - r * 0.35, r * 0.3), (1, 1, 1), 0.9)

    # Twine around the neck.
    twine = box(cx, 110, 50, 9, 5)
    cv.shadow(twine, 0.4, 5, 2, 4)
    strands = 0.5 + 0.5 * np.sin((X * 0.9 + Y * 1.6) * 0.55)
    cv.fill(twine, shade(mix((0.55, 0.42, 0.26), (0.8, 0.68, 0.48), strands), cyl_n(cx, 52)))
    cv.fill(box(cx, 125, 47, 3, 2), shade((0.62, 0.5, 0.32), cyl_n(cx, 52)))

    # Cork, with pores, a lighter top lip and a shadow onto the glass lip.
    cv.shadow(cork, 0.5, 6, 3, 5)
    pores = speckle(11, 4)
    cork_base = np.asarray((0.74, 0.55, 0.34)) * (0.85 + 0.3 * pores)[..., None]
    cork_col = shade(cork_base, cyl_n(cx, 54, -0.1), amb=0.45)
    cv.fill(cork, cork_col)
    rng = np.random.default_rng(12)
    for _ in range(22):
        px, py = cx + rng.uniform(-40, 40), rng.uniform(30, 72)
        cv.tint(ellipse(px, py, rng.uniform(1.5, 3.5), rng.uniform(1.0, 2.2)), (0.3, 0.18, 0.08), 0.7)
    cv.tint(box(cx, 27, 49, 4, 3), (0.92, 0.78, 0.56), 0.55, soft=2)

    # Glass highlights: a big curved streak, a sparkle, a neck glint and a faint bounce light.
    ang = np.arctan2(Y - bcy, X - cx)
    # Two offset circles: a crescent that tapers to nothing at both ends.
    crescent = np.maximum(circle(cx, bcy, br - 20), -circle(cx + 20, bcy + 25, br - 8))
    cv.tint(crescent, (1, 1, 1), 0.7, soft=3)
    cv.tint(circle(cx - 44, bcy - 124, 8), (1, 1, 1), 0.9, soft=2)
    cv.tint(box(cx - 30, 135, 5, 26, 5), (1, 1, 1), 0.55, soft=2)
    bounce = np.maximum(np.abs(circle(cx, bcy, br - 22)) - 5, np.abs(ang - 0.55) * (br - 22) - 45)
    cv.tint(bounce, (1.0, 0.7, 0.9), 0.35, soft=4)

    cv.finish(sil, rim_col=(0.6, 0.85, 1.0), rim=0.6, rim_w=8)
    return cv


def draw_mushroom() -> Canvas:
    cv = Canvas()
    cx = 256.0
    ccy, crx, cry = 252.0, 226.0, 178.0  # cap dome ellipse centre and radii
    dome = np.maximum(ellipse(cx, ccy, crx, cry), Y - ccy)
    lip = ellipse(cx, ccy, crx, 42)
    cap = smin(dome, lip, 6)

    # Stem: a slightly bulging column flaring into a bulb, with a frilly ring (annulus).
    t = np.clip((Y - 250) / 230, 0, 1)
    hw = 52 + 10 * np.sin(t * np.pi) + 30 * t**6
    xoff = 8 * np.sin(t * 2.2)  # a gentle sway
    stem = rescale(np.maximum(np.abs(X - cx - xoff) - hw, Y - 470))
    bulb = ellipse(cx + 6, 462, 86, 26)
    stem = smin(np.maximum(stem, 240 - Y), bulb, 16)
    sil = np.minimum(cap, stem)

    fibres = waves(X * 6, Y * 0.2, 21, n=6, fu=(0.02, 0.05), fv=(0.002, 0.01))
    stem_base = np.asarray((0.93, 0.88, 0.76)) * (1 - 0.07 * fibres)[..., None]
    cv.fill(stem, shade(stem_base, cyl_n(cx + xoff, hw * 1.05), amb=0.45, diff=0.65))
    earth = np.clip((Y - 420) / 60, 0, 1) ** 1.5  # darker, earthier towards the ground
    cv.rgb = (cv.rgb * (1 - 0.3 * earth)[..., None]
              + np.asarray((0.35, 0.27, 0.18)) * (0.3 * earth * cv.a)[..., None])
    # Gills peeking under the lip, then the cap's soft shadow on the top of the stem.
    gills = ellipse(cx, ccy + 16, crx - 26, 34)
    gill_lines = 0.5 + 0.5 * np.sin(np.arctan2(Y - ccy + 40, X - cx) * 90)
    cv.fill(np.maximum(gills, ccy - Y), mix((0.62, 0.5, 0.42), (0.45, 0.33, 0.27), gill_lines))
    cv.shadow(cap, 0.5, 26, 0, 10)
    # A frilled skirt (annulus) flaring out from the stem, with a wavy lower edge.
    top, bottom = 330.0, 362.0
    wave = 4 * np.sin((X - cx) * 0.16)
    skirt = rescale(np.maximum.reduce([np.abs(X - cx - 6) - (58 + (Y - top) * 0.7), top - Y, Y - (bottom + wave)]))
    skirt = smin(skirt, ellipse(cx + 6, top, 60, 6), 3)
    cv.shadow(skirt, 0.45, 10, 2, 9)
    skirt_shade = mix((0.97, 0.93, 0.84), (0.8, 0.74, 0.64), np.clip((Y - top) / (bottom - top), 0, 1))
    cv.fill(skirt, shade(skirt_shade, cyl_n(cx + 6, 84, 0.2), amb=0.5, diff=0.6))
    folds = rescale(np.maximum(np.abs(np.sin((X - cx) * 0.16 + 1.2)) - 0.2, skirt + 3))
    cv.tint(folds, (0.55, 0.5, 0.42), 0.3, soft=2)
    sil = np.minimum(sil, skirt)

    # Cap: sphere-shaded red with mottling, then spots mapped onto the dome's sphere.
    n = sphere_n(cx, ccy + 30, crx * 1.04, cry * 1.2)
    mottle = waves(X, Y, 33, n=6, fu=(0.01, 0.03), fv=(0.01, 0.03))
    red = mix((0.86, 0.16, 0.1), (0.62, 0.06, 0.08), np.clip((Y - 120) / 180, 0, 1))
    red = red * (1 + 0.07 * mottle)[..., None]
    cv.fill(cap, shade(red, n, amb=0.38, diff=0.78, spec=0.35, shin=18))
    nx, ny, nz = n
    spots = [(-0.05, -0.75, 0.28), (0.45, -0.55, 0.2), (-0.55, -0.45, 0.22), (0.2, -0.25, 0.16),
             (-0.3, -0.12, 0.15), (0.72, -0.12, 0.15), (-0.8, -0.08, 0.13),
             (0.5, 0.1, 0.1), (-0.52, 0.12, 0.1), (-0.78, -0.55, 0.1)]
    for sx, sy, rad in spots:
        sz = np.sqrt(max(1 - sx * sx - sy * sy, 0.05))
        dx, dy, dz = normalize(np.float64(sx), np.float64(sy), np.float64(sz))
        ang = np.arccos(np.clip(nx * dx + ny * dy + nz * dz, -1, 1)) - rad
        d = np.maximum(rescale(ang), cap + 3)
        cv.fill(d, shade((0.98, 0.95, 0.86), n, amb=0.55, diff=0.6, spec=0.3))
        cv.tint(np.maximum(-d - 3, d), (0.75, 0.62, 0.55), 0.35)  # soft edge where the spot meets the cap
    # Lip highlight band and subsurface glow on the rim.
    cv.tint(np.maximum(np.abs(lip + 5) - 3, ccy + 10 - Y), (1.0, 0.45, 0.35), 0.3, soft=3)
    cv.finish(sil, rim_col=(0.7, 0.85, 1.0), rim=0.55, rim_w=9)
    return cv


def draw_lantern(view: str) -> Canvas:
    """One orthographic view of the same lantern: 'front', 'side' (from its right) or 'back'.

    All vertical positions are shared, so the views line up for multi-view reconstruction. The lantern
    has a square footprint, so every view has the same width; only the details and the handle differ.
    """
    cv = Canvas()
    cx = 256.0
    hw = 112.0  # half width of the body
    iron = np.asarray((0.24, 0.23, 0.22))

    # Hanging ring on top: a torus seen face-on (front/back) or edge-on (side).
    if view == "side":
        handle = box(cx, 66, 4.5, 34, 4)
    else:
        handle = ring(cx, 66, 30, 9)
    knob = circle(cx, 104, 15)
    roof = polygon([(cx - 34, 112), (cx + 34, 112), (cx + 128, 170), (cx - 128, 170)])
    eave = box(cx, 173, 136, 8, 4)
    band_top = box(cx, 190, hw + 4, 11, 3)
    glass = box(cx, 298, hw - 4, 100)
    posts = np.minimum(box(cx - hw + 9, 298, 12, 112, 3), box(cx + hw - 9, 298, 12, 112, 3))
    band_bot = box(cx, 408, hw + 4, 11, 3)
    base = polygon([(cx - hw - 2, 418), (cx + hw + 2, 418), (cx + hw + 16, 446), (cx - hw - 16, 446)])
    base = np.minimum(base, box(cx, 446, hw + 16, 6, 3))
    feet = np.minimum(box(cx - hw + 4, 460, 14, 12, 4), box(cx + hw - 4, 460, 14, 12, 4))
    sil_parts = [handle, knob, roof, eave, band_top, glass, posts, band_bot, base, feet]
    latch = None
    if view == "side":  # the front door's latch pokes out on the left edge (the front faces left)
        latch = box(cx - hw - 6, 300, 8, 7, 3)
        sil_parts.append(latch)
    sil = np.minimum.reduce(sil_parts)

    # Glass with the candle glow behind it.
    fx, fy = cx, 262.0
    r2 = (X - fx) ** 2 + ((Y - fy) * 0.8) ** 2
    glow = np.exp(-r2 / (2 * 70.0**2))
    glass_col = mix((0.42, 0.2, 0.06), (1.0, 0.86, 0.5), glow)
    cv.fill(glass, glass_col)
    # Candle (inside, same in every view), its flame, and a warm halo.
    candle = np.minimum(box(cx, 350, 24, 48, 4), ellipse(cx, 303, 24, 6))
    candle_col = shade((0.96, 0.88, 0.7), cyl_n(cx, 26), amb=0.75, diff=0.3)
    candle_col = mix(candle_col, (1.0, 0.95, 0.75), np.clip(1 - (Y - 300) / 30, 0, 1) * 0.6)
    cv.fill(candle, candle_col * (0.75 + 0.35 * glow)[..., None])
    cv.fill(segment(cx, 290, cx, 303, 1.6), (0.15, 0.1, 0.08))
    flame_outer = rescale(np.hypot((X - cx) / 13, (Y - 272) / np.where(Y < 272, 34, 16)) - 1)
    cv.fill(flame_outer, (1.0, 0.62, 0.15))
    cv.fill(rescale(np.hypot((X - cx) / 7, (Y - 278) / np.where(Y < 278, 18, 9)) - 1), (1.0, 0.98, 0.85))
    cv.tint(np.maximum(glass, np.hypot(X - fx, Y - fy) - 60), (1.0, 0.9, 0.6), 0.35, soft=40)
    # Glass reflections: two diagonal streaks.
    diag = (X - cx) + (Y - 298) * 0.6
    for off, w, k in ((-55, 7, 0.35), (-35, 3, 0.25)):
        cv.tint(np.maximum(np.abs(diag - off) - w, glass), (1, 1, 1), k, soft=2)

    # Per-view pane detail (iron bars), drawn over the glass.
    bars = []
    if view == "front":  # a hinged door: frame inset, two hinges on the left, latch on the right
        door = np.abs(box(cx, 298, hw - 18, 92, 4)) - 3.5
        bars += [door, box(cx - hw + 18, 240, 9, 8, 2), box(cx - hw + 18, 356, 9, 8, 2),
                 box(cx + hw - 20, 300, 8, 11, 3)]
    elif view == "back":  # fixed pane with a cross of mullions
        bars += [box(cx, 298, 3.5, 100), box(cx, 298, hw - 4, 3.5)]
    else:  # side pane: one horizontal bar
        bars += [box(cx, 298, hw - 4, 3.5)]
    bar_d = np.minimum.reduce(bars)
    cv.shadow(bar_d, 0.35, 5, 3, 4)
    cv.fill(bar_d, shade(iron, bevel_n(bar_d, 3, 1.2), amb=0.4, spec=0.5, shin=30) + 0.15 * glow[..., None]
            * np.asarray((1.0, 0.6, 0.2)))

    # Iron frame: posts, bands, roof, base, feet, handle.
    grit = speckle(3, 2)
    iron_tex = iron * (0.85 + 0.3 * grit)[..., None]
    frame_parts = [posts, band_top, band_bot, eave, base, feet]
    frame = np.minimum.reduce(frame_parts)
    cv.shadow(frame, 0.45, 7, 4, 5)
    post_n = np.where(X < cx, 0, 1)
    nl = cyl_n(cx - hw + 9, 13)
    nr = cyl_n(cx + hw - 9, 13)
    pn = tuple(np.where(post_n == 0, a, b) for a, b in zip(nl, nr))
    cv.fill(feet, shade(iron_tex, bevel_n(feet, 5), amb=0.35, spec=0.4))
    cv.fill(base, shade(iron_tex, bevel_n(base, 6, 1.0, base=(0, -0.35, 1)), amb=0.35, spec=0.5))
    cv.fill(posts, shade(iron_tex, pn, amb=0.35, spec=0.7, shin=36))
    for band in (band_top, band_bot):
        cv.fill(band, shade(iron_tex, bevel_n(band, 5, 1.3), amb=0.35, spec=0.6))
    for x_r in np.linspace(cx - hw + 12, cx + hw - 12, 6):
        for y_r in (190.0, 408.0):
            cv.fill(circle(x_r, y_r, 3.6), shade((0.55, 0.52, 0.48), sphere_n(x_r, y_r, 4, 4), spec=0.9))
    if latch is not None:
        cv.fill(latch, shade(iron_tex, bevel_n(latch, 3), spec=0.5))
    cv.shadow(np.minimum(roof, eave), 0.5, 8, 0, 7)
    cv.fill(eave, shade(iron_tex, bevel_n(eave, 4, 1.3), amb=0.35, spec=0.6))
    roof_n = normalize((X - cx) / 260, np.full_like(X, -0.75), np.full_like(X, 0.66))
    seams = np.abs(np.abs(X - cx) - (Y - 112) * 94 / 58 - 34 + 40) - 1.2  # two raised roof ribs
    cv.fill(roof, shade(iron_tex, roof_n, amb=0.38, diff=0.8, spec=0.45, shin=20))
    cv.tint(np.maximum(seams, roof + 2), (0.55, 0.52, 0.48), 0.6)
    cv.fill(knob, shade(iron_tex, sphere_n(cx, 104, 16, 16), amb=0.35, spec=0.8, shin=40))
    hn = sphere_n(cx, 66, 5, 34) if view == "side" else bevel_n(handle, 4.5, 2.0)
    cv.fill(handle, shade(iron_tex, hn, amb=0.35, spec=0.8, shin=40))
    cv.shadow(handle, 0.35, 4, 2, 3)  # onto the knob only (the rest is transparent)

    # Warm light spilling onto the frame next to the glass.
    spill = np.exp(-np.maximum(glass, 0) / 14) * (glass > 0.5) * (1 - cov(glass)) * glow.max()
    cv.add((0.9, 0.5, 0.15), 0.35 * spill * np.exp(-r2 / (2 * 130.0**2)))
    cv.finish(sil, rim_col=(0.55, 0.75, 1.0), rim=0.55, rim_w=7)
    return cv


def draw_rune_sword() -> Canvas:
    """A flat blade, crossguard, grip and pommel, with detached ornaments floating around it."""
    cv = Canvas()
    cx = 256.0
    steel = (0.7, 0.74, 0.8)
    blade_top, blade_bot, bhw = 34.0, 362.0, 23.0  # the blade runs into the crossguard: one part
    blade = polygon([(cx, blade_top), (cx + bhw, blade_top + 46), (cx + bhw, blade_bot), (cx - bhw, blade_bot),
                     (cx - bhw, blade_top + 46)])
    guard = smin(box(cx, 366, 84, 11, 6), np.minimum(circle(cx - 86, 366, 13), circle(cx + 86, 366, 13)), 6)
    grip = box(cx, 418, 11, 42, 4)
    pommel = circle(cx, 472, 17)
    sword = np.minimum.reduce([blade, guard, grip, pommel])

    # Floating ornaments, each its own part: two crystal shards, a ring (a real hole) and two orbs.
    shards = [polygon([(x, y - 30), (x + 13, y), (x, y + 30), (x - 13, y)]) for x, y in ((150.0, 150.0), (362.0, 226.0))]
    ring_d = ring(356.0, 96.0, 26.0, 9.0)
    orbs = [circle(x, y, 12) for x, y in ((160.0, 270.0), (352.0, 318.0))]
    ornaments = np.minimum.reduce(shards + orbs + [ring_d])
    sil = np.minimum(sword, ornaments)

    # Blade: bevelled steel with a darker fuller down the middle and glowing runes in it.
    bn = bevel_n(blade, 9, 1.6)
    edge = np.clip(1 + blade / 7, 0, 1)
    cv.fill(blade, shade(mix(steel, (0.92, 0.94, 0.98), edge), bn, amb=0.45, diff=0.6, spec=0.8, shin=40))
    fuller = box(cx, 220, 5, 120, 4)
    cv.tint(fuller, (0.3, 0.33, 0.4), 0.55, soft=1.5)
    glow = (0.35, 0.95, 1.0)
    for k in range(6):
        ry = 120 + 38 * k
        rune = np.minimum(segment(cx - 4, ry - 9, cx + 4, ry + 9, 1.6),
                          segment(cx - 4, ry + (3 if k % 2 else -3), cx + 4, ry + (-3 if k % 2 else 3), 1.6))
        cv.tint(rune + 2.5, glow, 0.25, soft=4)
        cv.tint(rune, glow, 0.95)
    # Crossguard and pommel: gold; grip: leather wrapping.
    gold = (0.85, 0.66, 0.25)
    cv.shadow(guard, 0.5, 6, 0, 6)
    cv.fill(guard, shade(gold, bevel_n(guard, 6, 1.4), amb=0.4, spec=0.7, shin=30))
    wrap = 0.5 + 0.5 * np.sin((Y * 0.9 + X * 0.5) * 0.7)
    cv.fill(grip, shade(mix((0.32, 0.18, 0.1), (0.5, 0.3, 0.16), wrap), cyl_n(cx, 12)))
    cv.fill(pommel, shade(gold, sphere_n(cx, 472, 18, 18), amb=0.4, spec=0.8, shin=36))
    cv.fill(circle(cx, 472, 6), shade((0.2, 0.8, 0.95), sphere_n(cx, 472, 7, 7), spec=0.9, shin=40))

    # Ornaments: cyan crystals with a light facet, a gold ring, glowing orbs.
    for (x, y), shard in zip(((150.0, 150.0), (362.0, 226.0)), shards):
        facet = np.where(X < x, 1.0, 0.72)
        cv.fill(shard, shade(np.asarray((0.3, 0.8, 0.95)) * facet[..., None], bevel_n(shard, 4, 0.8), amb=0.6,
                             spec=0.7, shin=30))
    cv.fill(ring_d, shade(gold, bevel_n(ring_d, 3, 1.2), amb=0.4, spec=0.7, shin=30))
    for (x, y), orb in zip(((160.0, 270.0), (352.0, 318.0)), orbs):
        cv.fill(orb, shade((0.3, 0.85, 1.0), sphere_n(x, y, 13, 13), amb=0.6, spec=0.9, shin=40))
    cv.finish(sil, rim_col=(0.55, 0.9, 1.0), rim=0.5, rim_w=5, ink_w=1.6)
    return cv


def draw_shield() -> Canvas:
    """A heater shield: painted wooden face, iron rim and boss, a heraldic chevron."""
    cv = Canvas()
    cx = 256.0
    outline = [(cx - 196, 40), (cx + 196, 40), (cx + 196, 230), (cx + 150, 350), (cx, 482), (cx - 150, 350),
               (cx - 196, 230)]
    face = rescale(polygon(outline))
    face = smin(face, box(cx, 40, 196, 4, 4), 4)
    iron = (0.4, 0.4, 0.43)
    grit = speckle(17, 2)
    # Wooden face painted blue, with planks showing through the paint and a white chevron.
    planks = wood(Y, X - cx, (0.16, 0.27, 0.55), seed=50, spacing=14)
    cv.fill(face, shade(planks, bevel_n(face, 22, 0.5), amb=0.5, diff=0.55))
    chevron = np.maximum(np.abs(np.abs(X - cx) * 0.9 + (Y - 300)) - 26, face + 24)
    cv.fill(chevron, shade((0.92, 0.9, 0.84), bevel_n(face, 22, 0.5), amb=0.5, diff=0.55))
    # Iron rim (a band inside the outline), boss and rivets.
    rim_band = np.maximum(face, -face - 18)
    cv.shadow(rim_band, 0.45, 8, 3, 5)
    cv.fill(rim_band, shade(np.asarray(iron) * (0.85 + 0.3 * grit)[..., None], bevel_n(rim_band, 6, 1.3), amb=0.35,
                            spec=0.6, shin=30))
    boss = circle(cx, 190, 44)
    cv.shadow(boss, 0.55, 12, 4, 8)
    cv.fill(boss, shade(iron, sphere_n(cx, 190, 46, 46), amb=0.35, spec=0.9, shin=40))
    for k in range(10):
        t = (k + 0.5) / 10
        px, py = cx - 186 + 372 * t, 50.0
        cv.fill(circle(px, py, 4.5), shade((0.55, 0.55, 0.58), sphere_n(px, py, 5, 5), spec=0.9))
    fall = np.clip(((X - cx) + (Y - 260)) / 700, -0.5, 0.5)
    cv.rgb *= (1.0 - 0.3 * fall)[..., None]
    cv.finish(face, rim_col=(0.6, 0.8, 1.0), rim=0.45, rim_w=8)
    return cv


# ---------------------------------------------------------------- output

SETTINGS = {
    "crate": 'category = "prop"\nheight_m = 0.8\nprompt = "A sturdy wooden shipping crate with horizontal planks, '
             'a diagonal brace and iron corner brackets"\n',
    "potion_bottle": 'category = "small_prop"\nheight_m = 0.25\nprompt = "A round-bodied glass potion bottle with '
                     'a cork stopper, glowing magenta liquid and twine around the neck"\n',
    "mushroom": 'category = "prop"\nheight_m = 0.6\nprompt = "A giant fantasy mushroom with a red white-spotted cap '
                'on a cream stem with a frilled ring"\n',
    "lantern": 'category = "prop"\nheight_m = 0.45\nviews = ["front", "right", "back"]\nprompt = "A square '
               'wrought-iron lantern with a hanging ring, pyramid roof, glass panes and a glowing candle inside"\n',
    "rune_sword": 'category = "prop"\nheight_m = 1.1\nprompt = "A rune sword with a glowing engraved blade, a gold '
                  'crossguard and crystals, a ring and orbs floating around it"\n',
    # a shield's silhouette reads like a round plate or a crate's face: its depth is stated
    "shield": 'category = "prop"\nheight_m = 0.9\nprompt = "A painted wooden heater shield with an iron rim, '
              'a boss and a white chevron"\n\n[reconstruct]\ndepth = "flat"\n',
}


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "data" / "concepts"
    jobs = [
        ("crate/front.png", draw_crate),
        ("potion_bottle/front.png", draw_potion),
        ("mushroom/front.png", draw_mushroom),
        ("lantern/1_front.png", lambda: draw_lantern("front")),
        ("lantern/2_side.png", lambda: draw_lantern("side")),
        ("lantern/3_back.png", lambda: draw_lantern("back")),
        ("rune_sword/front.png", draw_rune_sword),
        ("shield/front.png", draw_shield),
    ]
    for rel, draw in jobs:
        path = out / rel
        draw().save(path)
        print(f"{path}  {path.stat().st_size // 1024} KiB")
    for name, text in SETTINGS.items():
        (out / name / "asset.toml").write_text(text, "utf-8")
        print(out / name / "asset.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
