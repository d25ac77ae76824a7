"""How each LOD level looks where it is shown: rendered beside the source at its switch size.

    view = switch_view(source, screen_size)                  # frame and pixel size at 1080p
    diff = rendered_difference(render_at(source, view), render_at(level, view))
    look = judge_level(source, level_model, screen_size, bake)   # plain vs baked, which one ships

The geometric error (`lod.surface_distance`) says how far a level's surface is from the source;
this says what that costs on screen, with the level's materials, textures and normal maps, in
Kiln's software renderer (Lambert + base colour + tangent-space normal maps, `render.render`).

Conventions:
- A level is rendered at its switch screen size: the model's largest bounding-box side spans
  `screen_size * 1080` pixels (Kiln's convention, `lod.SCREEN_HEIGHT_PX`), orthographic (at a
  switch distance the perspective over the model's depth is negligible), from the three-quarter
  camera the side-by-side sheets use (yaw 30, pitch 15). Source and level share that camera and
  frame, so every difference is the level's own. One sample per pixel, as an engine without MSAA.
- Silhouette displacement (px): how far the level's outline sits from the source's, on average
  along the outline: the pixels covered by exactly one of the two (their XOR) divided by the
  outline's length. An outline moved by d pixels everywhere gives d; a level that loses a part
  shows it as that part's area spread over the whole outline, so the worst pixel is reported too
  (`silhouette_max_px`: the farthest XOR pixel from the other silhouette). Outline length is the
  mean of both masks' pixel-edge counts times pi/4 (Cauchy-Crofton: a curve's 4-connected edge
  count overestimates its length by 4/pi on average over directions).
- Shading difference: mean absolute RGB difference, 0-255, over the pixels both cover (the
  silhouette is measured apart), with every material's maps as the engine would use them.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from PIL import Image, ImageDraw

from .bake import HighSurface, LevelBake, bake_level, with_baked_normals
from .lod import (SCREEN_HEIGHT_PX, LodBudget, LodChain, LodLevel, behind_the_search, build_lod_chain, model_size,
                  one_blas_thread)
from .model import Model
from .render import Frame, fit_frame, render_variants, sheet

VIEW = (30.0, 15.0)  # yaw, pitch: the three-quarter camera of Kiln's side-by-side sheets
# A bake ships only when it lowers the level's shading difference by at least this share: a map
# costs a texture (memory, a sampler) and must pay for it on screen. Measured where bakes help:
# the Step1X-3D 40K model as a prop, 20-38% lower (0.67 -> 0.54, 1.45 -> 0.90, 6.59 -> 4.12);
# the 500K bench sphere, 46-69%. The 2% margin is not tuned: it only keeps a map whose effect is
# within rounding of zero from shipping.
BAKE_MIN_GAIN = 0.02
NORMAL_MAP_PX = 512  # the largest baked normal map: LOD1 at 0.4 screen height is ~430 px tall at 1080p


def bake_px(level: LodLevel, *, largest: int = NORMAL_MAP_PX) -> int:
    """A level's baked map side: `largest`, or the level's own texture size where that is smaller
    (the far levels' textures are downscaled with the chain: a normal map finer than the base
    colour beside it costs memory for detail the level is too small to show). Sized by screen
    pixels instead (two texels per pixel of the largest side: 128 px at 0.08), the 500K bench
    sphere's far levels shaded 20-50% worse than with 512 px maps (LOD3 as a prop: 11.8 vs 9.8)
    and saved little time: the source's ray-tracing scene is most of a bake."""
    return min(largest, level.texture_size or largest)


@dataclass(frozen=True)
class SwitchView:
    """The camera a level is judged from: its frame (meters on the image plane) and image size."""

    frame: Frame
    width: int
    height: int
    height_px: float  # the model's largest side in pixels: screen_size * screen height
    yaw_deg: float = VIEW[0]
    pitch_deg: float = VIEW[1]


@dataclass(frozen=True)
class RenderedDifference:
    """A model rendered beside its reference from one SwitchView (see the module doc)."""

    silhouette_px: float  # mean outline displacement, pixels
    silhouette_max_px: float  # the farthest pixel covered by one render and not the other
    shading: float  # mean |RGB| difference over the pixels both cover, 0-255

    def to_json(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def switch_view(source: Model, screen_size: float, *, screen_height_px: int = SCREEN_HEIGHT_PX,
                yaw_deg: float = VIEW[0], pitch_deg: float = VIEW[1]) -> SwitchView:
    """The frame in which `source`'s largest side spans screen_size * screen_height_px pixels:
    around the source's projected vertices with a 4% margin (not its bounding box's corners, whose
    projection from the three-quarter camera framed the 500K bench sphere in 1,520 px squares, with
    twice the pixels its 1,080 px silhouette needs, rendered and compared for nothing)."""
    pixel = model_size(source) / (screen_size * screen_height_px)
    left, right, bottom, top = fit_frame(source, yaw_deg, pitch_deg, margin=0.04, aspect=None, around="vertices")
    width = max(1, math.ceil((right - left) / pixel))
    height = max(1, math.ceil((top - bottom) / pixel))
    cx, cy = (left + right) / 2, (bottom + top) / 2
    frame = (cx - width * pixel / 2, cx + width * pixel / 2, cy - height * pixel / 2, cy + height * pixel / 2)
    return SwitchView(frame, width, height, screen_size * screen_height_px, yaw_deg, pitch_deg)


def render_at(model: Model, view: SwitchView, *, variants: tuple[Model, ...] = ()) -> np.ndarray | list[np.ndarray]:
    """(h, w, 4) RGBA of `model` from `view` (transparent background); with `variants` (the same
    geometry, other maps), a list: the model's render, then each variant's, rasterized once.
    Textures are decoded at a power of two at least twice the view (both sides of a comparison
    alike), so the renders of one model at several switch sizes share one decoded texture."""
    side = 1 << max(0, math.ceil(math.log2(2 * max(view.width, view.height))))
    out = render_variants([model, *variants], yaw_deg=view.yaw_deg, pitch_deg=view.pitch_deg,
                          size=(view.width, view.height), frame=view.frame, texture_side=side)
    return out if variants else out[0]


def _outline_px(mask: np.ndarray) -> float:
    padded = np.pad(mask, 1)
    edges = np.count_nonzero(padded[1:] != padded[:-1]) + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    return math.pi / 4 * edges


def _farthest(pixels: np.ndarray, mask: np.ndarray) -> float:
    """The largest distance from a pixel of `pixels` to the nearest pixel of `mask` (px)."""
    if not pixels.any():
        return 0.0
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    outline = np.argwhere(mask & ~inner)
    if not len(outline):
        return math.inf
    return float(cKDTree(outline).query(np.argwhere(pixels))[0].max())


def rendered_difference(reference: np.ndarray, other: np.ndarray) -> RenderedDifference:
    """Silhouette displacement and shading difference of two RGBA renders from one view."""
    a, b = reference[..., 3] > 0, other[..., 3] > 0
    xor = a ^ b
    outline = 0.5 * (_outline_px(a) + _outline_px(b))
    if not xor.any():
        mean = worst = 0.0
    else:
        mean = float(np.count_nonzero(xor) / outline) if outline else math.inf
        # the farthest XOR pixel from the silhouette that lacks it (pixel centres, Euclidean): the
        # nearest pixel of a silhouette is on its outline, so only outline pixels are searched
        worst = max(_farthest(a & ~b, b), _farthest(b & ~a, a))
    both = a & b
    shading = float(np.abs(reference[both, :3].astype(np.int16) - other[both, :3]).mean()) if both.any() else 0.0
    return RenderedDifference(mean, worst, shading)


@dataclass
class LevelLook:
    """One level at its switch size: the difference it ships with and, when a normal map was
    baked, the difference without it, and which of the two ships."""

    view: SwitchView
    shipped: RenderedDifference
    plain: RenderedDifference  # the level with its plain maps (the same as `shipped` without a bake)
    baked: RenderedDifference | None  # the level with the baked map, when one was baked
    bake_used: bool
    reason: str
    source_rgba: np.ndarray | None  # the renders, for the comparison strip (None: not rendered)
    level_rgba: np.ndarray | None
    written: list[int] = field(default_factory=list)  # materials whose normalTexture is the shipped bake

    def to_json(self) -> dict:
        return {"height_px": round(self.view.height_px, 1), "camera": {"yaw_deg": self.view.yaw_deg,
                                                                       "pitch_deg": self.view.pitch_deg},
                **self.shipped.to_json(), "shading_plain": round(self.plain.shading, 4),
                "shading_baked": None if self.baked is None else round(self.baked.shading, 4),
                "bake_used": self.bake_used}


def judge_level(source: Model, level: Model, screen_size: float, bake: LevelBake | None = None, *,
                screen_height_px: int = SCREEN_HEIGHT_PX, reference: Future | None = None
                ) -> tuple[Model, LevelLook]:
    """Render `level` beside `source` at `screen_size`; with a bake, also with the baked maps, and
    ship the bake only when it lowers the shading difference by BAKE_MIN_GAIN. Returns the level
    as it ships (with the baked maps and tangents, or as given) and how it looks. `reference`: a
    future of the source's render from `switch_view(source, screen_size)`, if the caller started
    one (waited for once the level's own renders are done); otherwise it is rendered here."""
    view = switch_view(source, screen_size, screen_height_px=screen_height_px)
    baked_model, written = with_baked_normals(level, bake) if bake is not None and bake.used else (level, [])
    if not written:
        plain_rgba = render_at(level, view)
    else:
        plain_rgba, baked_rgba = render_at(level, view, variants=(baked_model,))
    reference = render_at(source, view) if reference is None else reference.result()
    plain = rendered_difference(reference, plain_rgba)
    if not written:
        reason = "; ".join(bake.notes) if bake is not None and bake.notes else "no bake"
        return level, LevelLook(view, plain, plain, None, False, reason, reference, plain_rgba)
    baked = rendered_difference(reference, baked_rgba)
    if baked.shading <= (1.0 - BAKE_MIN_GAIN) * plain.shading:
        return baked_model, LevelLook(view, baked, plain, baked, True,
                                      f"the baked map lowers the shading difference {plain.shading:.2f} -> "
                                      f"{baked.shading:.2f} (0-255)", reference, baked_rgba, written)
    return level, LevelLook(view, plain, plain, baked, False,
                            f"the baked map would not lower the shading difference enough ({plain.shading:.2f} -> "
                            f"{baked.shading:.2f}, 0-255; at least {BAKE_MIN_GAIN:.0%} needed): plain maps",
                            reference, plain_rgba)


def bake_and_judge(source: Model, chain: list[LodLevel], *, normal_map_px: int = NORMAL_MAP_PX,
                   seconds: dict[str, float] | None = None) -> list[LevelBake | None]:
    """Bake a normal map onto every level after LOD0 (from the normalized source, `bake_px` texels a
    side, at most `normal_map_px`) and judge each level at its switch size; sets each level's
    `model` (with the bake where it ships) and `look`. Returns the bakes (None for LOD0), for
    their notes and maps. LOD0 left as the source's own geometry is not rendered: it is the
    source (difference 0).

    `seconds` (optional) receives where the time went, summed over the two threads the work runs
    on: bake (rays, maps) and judge (renders)."""
    with one_blas_thread():
        looks = _Looks(source, normal_map_px, seconds, bakes=len(chain) > 1)
        try:
            for lod in chain:
                done: Future = Future()
                done.set_result(lod)
                looks.add(done)
            return looks.results()
        finally:
            looks.close()


def build_and_judge(source: Model, budget: LodBudget, *, normal_map_px: int = NORMAL_MAP_PX,
                    seconds: dict[str, float] | None = None, **chain_options
                    ) -> tuple[LodChain, list[LevelBake | None]]:
    """`build_lod_chain`, then `bake_and_judge`, overlapped: each level is baked and judged (on two
    threads) as soon as the search accepts it, while the next level is searched, whose
    simplifications keep one core busy. The same levels, bakes and looks as the two calls in turn.
    `chain_options` go to `build_lod_chain`."""
    # The source's renders at every switch size start with the search, while LOD0 is searched (its
    # first tries keep one core busy and the looks have nothing else to do yet); LOD0's only where
    # the source is over LOD0's ceiling, else LOD0 is likely the source itself, which is not rendered.
    sizes = budget.screen_sizes if source.triangle_count > budget.ceiling(0) else budget.screen_sizes[1:]
    with one_blas_thread():  # the looks' renders too (their projections are matrix products)
        looks = _Looks(source, normal_map_px, seconds, bakes=budget.levels > 1, references=sizes)
        try:
            chain = build_lod_chain(source, budget, on_start=looks.start, on_level=looks.add, **chain_options)
            return chain, looks.results()
        finally:
            looks.close()


class _Looks:
    """Bakes and judgements of a chain's levels on a pool of two threads (the compiled passes and
    numpy's large array passes release the GIL), in the order the levels arrive. Per level, the
    source's render at the level's switch size and the level's bake run side by side, then the
    judgement that needs both; each job is queued once its inputs are done (`_after`). A job
    waits only for jobs submitted before it (the source's surface and renders), so the pool
    cannot deadlock."""

    def __init__(self, source: Model, normal_map_px: int, seconds: dict[str, float] | None, *, bakes: bool,
                 references: tuple[float, ...] = ()):
        self.source, self.normal_map_px, self.size = source, normal_map_px, model_size(source)
        self.seconds = {} if seconds is None else seconds
        self.seconds.update(bake=0.0, judge=0.0)
        self._lock = threading.Lock()  # the two threads add to `seconds`
        self._starting = threading.Lock()  # `start` and `_after`'s callbacks come from several threads
        self.pool = ThreadPoolExecutor(2, initializer=behind_the_search)
        self.bakes, self.sizes = bakes, references
        self.high: Future | None = None
        self.references: dict[float, Future] | None = None  # set by `start`
        self.jobs: list[tuple[Future, Future]] = []  # per level: (bake, judgement)

    def start(self) -> None:
        """The work on the source alone: its ray-tracing surface (built once for every level baked)
        and its renders at the `references` switch sizes, ahead of the levels (a size no level comes
        for is work lost, not a wrong result). `build_and_judge` starts it once the search's own
        first needs are met (`build_lod_chain`'s on_start), not at once: measured in stop 25, the
        ray surface and two renders besides held up the search's start and its measuring surface
        (embreex then built its mesh holding the GIL; `raycast` no longer does, and these threads
        are niced, but the source's measuring surface still comes first). Runs once; the first
        level starts it if nothing did."""
        with self._starting:
            if self.references is not None:
                return
            if self.bakes:
                self.high = self.pool.submit(self._timed, "bake", HighSurface.of, self.source)
            self.references = {size: self.pool.submit(self._render_source, size) for size in self.sizes}

    def _render_source(self, size: float) -> np.ndarray:
        return self._timed("judge", lambda: render_at(self.source, switch_view(self.source, size)))

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    def _timed(self, part: str, fn, *args, **kwargs):
        clock = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self.seconds[part] += time.perf_counter() - clock

    def add(self, level: Future) -> None:
        """Bake (levels after LOD0) and judge the LodLevel that `level` (a Future) holds."""
        self.start()
        reference = self._after([level], self._reference, level)
        bake = self._after([level], self._bake, level)
        self.jobs.append((bake, self._after([bake, reference], self._judge, level, bake, reference)))

    def _after(self, inputs: list[Future], fn, *args) -> Future:
        """`fn(*args)` on the pool once every input is done. A job waiting for its inputs holds no
        thread: a judgement queued behind its level's bake would otherwise hold one of the two, and
        the next level's bake would wait for this one's instead of running beside it."""
        out: Future = Future()
        left = [len(inputs)]

        def ready(_: Future) -> None:
            with self._starting:
                left[0] -= 1
                if left[0]:
                    return
            try:
                job = self.pool.submit(fn, *args)
            except RuntimeError as exc:  # the pool was shut down: the chain failed and closed the looks
                out.set_exception(exc)
                return
            job.add_done_callback(lambda done: _forward(done, out))

        for future in inputs:
            future.add_done_callback(ready)
        return out

    def _reference(self, level: Future) -> np.ndarray | None:
        lod: LodLevel = level.result()
        if lod.method == "source":
            return None
        if lod.screen_size in (self.references or {}):
            return self.references[lod.screen_size].result()
        return self._render_source(lod.screen_size)

    def _bake(self, level: Future) -> LevelBake | None:
        lod: LodLevel = level.result()
        if not lod.level or self.high is None:
            return None
        high = self.high.result()
        # look for the source surface no farther than twice the level's measured error
        return self._timed("bake", bake_level, high, lod.model, lod.level,
                           size=bake_px(lod, largest=self.normal_map_px),
                           max_distance_m=max(2.0 * lod.error_m, 1e-4 * self.size))

    def _judge(self, level: Future, bake: Future, reference: Future) -> None:
        lod: LodLevel = level.result()
        if lod.method == "source":
            view = switch_view(self.source, lod.screen_size)
            zero = RenderedDifference(0.0, 0.0, 0.0)
            lod.look = LevelLook(view, zero, zero, None, False, "the source's own geometry", None, None)
            return
        lod.model, lod.look = self._timed("judge", judge_level, self.source, lod.model, lod.screen_size, bake.result(),
                                          reference=reference)

    def results(self) -> list[LevelBake | None]:
        """Waits for every level's work; returns the bakes in level order (None where none)."""
        return [(judgement.result(), bake.result())[1] for bake, judgement in self.jobs]


def _forward(done: Future, to: Future) -> None:
    """`to` gets `done`'s outcome."""
    if done.cancelled():
        to.cancel()
    elif done.exception() is not None:
        to.set_exception(done.exception())
    else:
        to.set_result(done.result())


def look_strip(chain: list[LodLevel], *, cell: int = 128) -> Image.Image:
    """Per level, the source and the level as rendered at the level's switch size, side by side
    (renders larger than `cell` are box-filtered down, smaller ones enlarged pixel for pixel so the
    real pixels show), labelled with the level's silhouette and shading differences."""
    cells = []
    for lod in chain:
        look = lod.look
        if look is None or look.source_rgba is None:
            continue
        for label, rgba in ((f"source @{lod.screen_size:g}", look.source_rgba),
                            (f"LOD{lod.level} {look.shipped.silhouette_px:.2f}px d{look.shipped.shading:.1f}",
                             look.level_rgba)):
            image = Image.fromarray(rgba, "RGBA")
            side = max(image.size)
            if side > cell:
                image = image.convert("RGBa").resize((max(1, image.size[0] * cell // side),
                                                      max(1, image.size[1] * cell // side)),
                                                     Image.Resampling.BOX).convert("RGBA")
            elif side * 2 <= cell:
                factor = cell // side
                image = image.resize((image.size[0] * factor, image.size[1] * factor), Image.Resampling.NEAREST)
            cells.append((label, image))
    if not cells:  # every level is the source's own geometry (a chain that stopped at LOD0)
        note = Image.new("RGB", (4 * cell, 32), (72, 72, 76))
        ImageDraw.Draw(note).text((8, 10), "no reduced level: LOD0 is the source itself, nothing to compare",
                                  fill=(235, 235, 235))
        return note
    return sheet(cells, cell, "each level beside the source at its switch size (1080p)")
