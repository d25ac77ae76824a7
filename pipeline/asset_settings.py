"""`asset.toml`: the one schema of a concept folder's settings, and the typed object stages read.

    parse_settings(raw_toml_dict, image_count=...) -> AssetSettings    (or SettingsError, one line)

`concept_art` parses the file with this schema before any provider runs, so a typo or an
impossible value fails at once, naming the file and the field and saying what is accepted; later
stages read the frozen `AssetSettings` (`AssetSettings.from_json` of the manifest), never dict keys.
README's table of keys is generated from the field descriptions here (`markdown_table`), and the
launchpad's run-config fields take their descriptions and ranges from the same fields (`describe`).

Sections other developers fill in later are declared here already (`[lod] screen_sizes`,
`[reconstruct]`, `[import]`), so their values are checked from day one.
No Dagster here: usable from a notebook and from the sensor.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, ValidationInfo, field_validator

from .categories import CATEGORIES, DEFAULT_CATEGORY
from .export.profiles import DEFAULT_PROFILES, PROFILES
from .geometry.foreground import MIN_PART_AREA
from .geometry.validate import CATEGORY_SIZE_RANGES_M
from .providers import DEFAULT_PROVIDER, PROVIDERS, RENAMED
from .providers.base import GenerationRequest, ImageInput

SETTINGS_FILE = "asset.toml"
MAX_VIEWS = 5  # the concept folder's limit (pipeline.concepts) and the turnaround's
VIEW_NAMES = ("front", "left", "side", "back", "right", "top")  # pipeline.geometry.reconstruct.NAMED_ANGLES
SEED_MAX = 65535  # the smallest seed range among the vendors (and the launchpad's)
LOD0_MIN_TRIANGLES = 12  # a box; below that no level can fall further
LOD0_MAX_TRIANGLES = 10_000_000
MAX_LOD_LEVELS = 8

# Strict scalars: TOML already types its values, so "7" is not a seed and true is not a height.
# An integer is still a float (height_m = 1 means one meter).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Str = Annotated[str, Strict()]



def _view_angle(value: Any) -> str | float:
    """A view's angle: a name (front, left, ...) or a finite yaw in degrees (a number, or text of one)."""
    if isinstance(value, str) and value.strip().lower() in VIEW_NAMES:
        return value
    try:
        degrees = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else math.nan
    except ValueError:
        degrees = math.nan
    if not math.isfinite(degrees):
        raise ValueError(f"view {value!r} is not one of {', '.join(VIEW_NAMES)} or a yaw in degrees")
    return value


ViewAngle = Annotated[Any, AfterValidator(_view_angle)]

ProviderName = Literal[tuple(PROVIDERS)]  # type: ignore[valid-type]
CategoryName = Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]
ProfileName = Literal[tuple(PROFILES)]  # type: ignore[valid-type]


class SettingsError(ValueError):
    """asset.toml does not fit the schema; the message is one line naming each field and what fits."""

    def __init__(self, message: str, fields: list[str]):
        super().__init__(message)
        self.fields = fields


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _falling(values: tuple[float, ...] | None, lo: float, hi: float, what: str, hi_open: bool) -> tuple[float, ...] | None:
    if values is None:
        return None
    if not values:
        raise ValueError(f"give at least one {what}, or leave the key out")
    for v in values:
        if not (lo < v < hi if hi_open else lo < v <= hi):
            raise ValueError(f"each {what} must be within ({lo:g}, {hi:g}{')' if hi_open else ']'}, got {v!r}")
    if any(b >= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{what}s must fall strictly from level to level, got {list(values)}")
    return values


class LodSettings(_Section):
    """`[lod]`: LOD budget overrides (else the category's budget)."""

    lod0_triangles: Optional[Int] = Field(
        default=None, ge=LOD0_MIN_TRIANGLES, le=LOD0_MAX_TRIANGLES,
        description=f"Triangle budget for LOD0, {LOD0_MIN_TRIANGLES:,}-{LOD0_MAX_TRIANGLES:,}; default: the category's.")
    ratios: Optional[tuple[Float, ...]] = Field(
        default=None, max_length=MAX_LOD_LEVELS - 1,
        description="Triangle ceiling of each further level as a fraction of lod0_triangles, strictly falling, each in (0, 1), "
        "e.g. [0.5, 0.25, 0.125]; default: the category's.")
    screen_sizes: Optional[tuple[Float, ...]] = Field(
        default=None, max_length=MAX_LOD_LEVELS,
        description="Switch screen size of each level, LOD0 first, strictly falling, each in (0, 1]: the "
        "model's largest side as a fraction of the screen height at and below which the level is shown; "
        "each level's error is held to one 1080p pixel there. Default: the category's.")

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v):
        return _falling(v, 0.0, 1.0, "ratio", hi_open=True)

    @field_validator("screen_sizes")
    @classmethod
    def _screen_sizes(cls, v):
        return _falling(v, 0.0, 1.0, "screen size", hi_open=False)


class ReconstructSettings(_Section):
    """`[reconstruct]`: the offline generator's shape choices."""

    depth: Literal["auto", "flat", "round"] = Field(
        default="auto", description='Unseen depth of each part of a single view: "auto" (long wide parts such as '
        'blades flat, the rest round), "flat" (every part a thin slab: shields, signs, cards) or "round" '
        "(every part round, as the category's depth profile).")
    min_part_area: Float = Field(
        default=MIN_PART_AREA, gt=0.0, le=0.5,
        description="Smallest separate part of the art kept (a floating ornament), as a fraction of the object's "
        f"bounding-box area, in (0, 0.5]; smaller regions are specks. Default: {MIN_PART_AREA:g}.")


class ImportSettings(_Section):
    """`[import]`: how the folder's own model.glb is taken in."""

    skinned: Literal["bind_pose", "refuse"] = Field(
        default="bind_pose", description='A skinned model: "bind_pose" (kept as a static mesh in its bind pose) '
        'or "refuse".')


class AssetSettings(_Section):
    """Everything asset.toml may say. Every key is optional."""

    prompt: Optional[Str] = Field(
        default=None, min_length=1, max_length=2000,
        description="Text description; text-to-3D when the folder has no images (remote providers only).")
    provider: Optional[ProviderName] = Field(
        default=None,
        description=f"Generator: {' | '.join(PROVIDERS)}. Default: `import` when the folder has a model.glb, "
        f"else `{DEFAULT_PROVIDER}` (offline).")
    category: CategoryName = Field(
        default=DEFAULT_CATEGORY,
        description=f"{' | '.join(CATEGORIES)}: sets the default height, LOD budget and size checks.")
    height_m: Optional[Float] = Field(
        default=None,
        description="Real-world height in meters, within the category's plausible range ("
        + ", ".join(f"{c} {lo:g}-{hi:g}" for c, (lo, hi) in CATEGORY_SIZE_RANGES_M.items())
        + "). Default: the category's height (imports keep their own size).")
    seed: Optional[Int] = Field(default=None, ge=0, le=SEED_MAX, description=f"Generation seed, 0-{SEED_MAX}.")
    views: Optional[tuple[ViewAngle, ...]] = Field(
        default=None, min_length=1, max_length=MAX_VIEWS,
        description=f"Angle of each concept image in file-name order: {', '.join(VIEW_NAMES)} or a yaw in "
        "degrees; one per image.")
    profiles: Optional[tuple[ProfileName, ...]] = Field(
        default=None, min_length=1,
        description=f"Export profiles, any of {', '.join(PROFILES)}. Default: {', '.join(DEFAULT_PROFILES)}.")
    lod: LodSettings = Field(default_factory=LodSettings, description="`[lod]` section: LOD budget overrides.")
    reconstruct: ReconstructSettings = Field(
        default_factory=ReconstructSettings, description="`[reconstruct]` section: offline generator shape choices.")
    import_: ImportSettings = Field(
        default_factory=ImportSettings, alias="import", description="`[import]` section: how model.glb is taken in.")
    options: dict[Str, Any] = Field(
        default_factory=dict,
        description="`[options]` section: provider options (e.g. `resolution` for local, `tier` for scenario); "
        "checked by the chosen provider when the concept is loaded.")

    @field_validator("provider", mode="before")
    @classmethod
    def _renamed(cls, v: Any) -> Any:
        if isinstance(v, str) and v in RENAMED:
            raise ValueError(f"provider {v!r} was renamed {RENAMED[v]!r}: write provider = \"{RENAMED[v]}\" "
                             f"(key {RENAMED[v].upper()}_API_KEY, base URL KILN_{RENAMED[v].upper()}_BASE_URL)")
        return v

    @field_validator("height_m")
    @classmethod
    def _height(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None:
            return v
        cat = info.data.get("category", DEFAULT_CATEGORY)
        lo, hi = CATEGORY_SIZE_RANGES_M[cat]
        if not lo <= v <= hi:
            raise ValueError(f"a {cat} is {lo:g}-{hi:g} m tall; got {v!r} (change height_m or category)")
        return v

    # -- the stages' view -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """What the artist set (defaults left out), as plain JSON for manifests and metadata."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "AssetSettings":
        return parse_settings(data or {})

    def provider_for(self, has_model: bool, override: str | None = None) -> str:
        """Run config wins, then asset.toml, then `import` for a folder with a model.glb, then local."""
        return override or self.provider or ("import" if has_model else DEFAULT_PROVIDER)

    def generation_request(self, asset_id: str, images: tuple[ImageInput, ...], model_glb: bytes | None, *,
                           seed: int | None = None, options: dict[str, Any] | None = None) -> GenerationRequest:
        """The provider request these settings describe (run-config `seed`/`options` win)."""
        return GenerationRequest(
            asset_id=asset_id,
            images=images,
            prompt=self.prompt,
            category=self.category,
            height_m=self.height_m,
            seed=seed if seed is not None else self.seed,
            view_angles=tuple(str(a) for a in self.views or ()),
            options=dict(self.options) if options is None else options,
            model_glb=model_glb,
            reconstruct=self.reconstruct.model_dump(),
        )


# ----------------------------------------------------------------------------------------------
# Parsing and the one-line message


def parse_settings(raw: dict[str, Any], *, image_count: int | None = None) -> AssetSettings:
    """Validate a parsed asset.toml; `image_count` also checks `views` against the images."""
    try:
        settings = AssetSettings.model_validate(raw)
    except ValidationError as exc:
        raise _settings_error(exc) from None
    if image_count and settings.views is not None and len(settings.views) != image_count:
        raise SettingsError(f"field views: {len(settings.views)} angles for {image_count} images; give one per "
                            "image, in file-name order", ["views"])
    return settings


def _field_name(loc: tuple) -> str:
    """`lod.ratios` -> `[lod] ratios`; list positions read as `views[2]`."""
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] = f"{parts[-1]}[{p}]" if parts else f"[{p}]"
        else:
            parts.append(str(p))
    if len(parts) > 1 and parts[0] in _SECTIONS:
        return f"[{parts[0]}] {'.'.join(parts[1:])}"
    return ".".join(parts)


_SECTIONS = {"lod": LodSettings, "reconstruct": ReconstructSettings, "import": ImportSettings}


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _expected(loc: tuple) -> str:
    """What the schema accepts at `loc`, from the field's own description."""
    name = next((p for p in reversed(loc) if isinstance(p, str)), None)
    model: type[BaseModel] = _SECTIONS.get(loc[0], AssetSettings) if len(loc) > 1 else AssetSettings
    for key, f in model.model_fields.items():
        if name in (key, f.alias):
            return (f.description or "").split(". Default")[0].rstrip(".")
    return ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# pydantic's own messages, where they read well to an artist; the field's description says the rest
_PLAIN = {
    "int_type": "must be a whole number", "float_type": "must be a number", "string_type": "must be text",
    "finite_number": "must be a finite number", "tuple_type": "must be a list", "dict_type": "must be a table",
    "model_type": "must be a [section] table", "literal_error": "is not one of the choices",
    "too_short": "is empty", "too_long": "has too many entries", "int_from_float": "must be a whole number",
}


def _settings_error(exc: ValidationError) -> SettingsError:
    problems, fields, seen = [], [], set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # one problem per key: pydantic may report a bad list item and the list itself
        key = loc[:2] if loc and loc[0] in _SECTIONS else loc[:1]
        if key in seen:
            continue
        seen.add(key)
        field = _field_name(loc) or "(top level)"
        fields.append(field)
        if err["type"] == "extra_forbidden":
            parent = _SECTIONS.get(loc[0]) if len(loc) > 1 else AssetSettings
            valid = _keys_of(parent or AssetSettings)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"valid keys: {', '.join(valid)}"
            problems.append(f"unknown key `{field}`; {hint}")
            continue
        if err["type"] == "value_error":
            problems.append(f"field {field}: {err['msg'].removeprefix('Value error, ')}")
            continue
        ctx = err.get("ctx") or {}
        said = {"greater_than_equal": f"must be at least {ctx.get('ge')}", "less_than_equal": f"must be at most {ctx.get('le')}",
                "greater_than": f"must be above {ctx.get('gt')}", "less_than": f"must be below {ctx.get('lt')}",
                }.get(err["type"]) or _PLAIN.get(err["type"], err["msg"][:1].lower() + err["msg"][1:])
        expected = _expected(loc)
        problems.append(f"field {field} = {_short(err.get('input'))} {said}" + (f" (expected: {expected})" if expected else ""))
    shown = problems[:3]
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    return SettingsError("; ".join(shown) + more, fields)


# ----------------------------------------------------------------------------------------------
# Documentation generated from the schema


def describe(section: str | None, key: str) -> str:
    """A field's description, for the launchpad's run-config fields that override it."""
    model = _SECTIONS[section] if section else AssetSettings
    for name, f in model.model_fields.items():
        if key in (name, f.alias):
            return f.description or ""
    raise KeyError(key)


def markdown_table() -> str:
    """README's table of asset.toml keys."""
    def cell(text: str | None) -> str:
        return (text or "").replace("|", "\\|")

    rows = ["| key | meaning and accepted values |", "|---|---|"]
    for name, f in AssetSettings.model_fields.items():
        key = f.alias or name
        if key in _SECTIONS:
            for sub, g in _SECTIONS[key].model_fields.items():
                rows.append(f"| `[{key}] {g.alias or sub}` | {cell(g.description)} |")
        else:
            rows.append(f"| `{key}` | {cell(f.description)} |")
    return "\n".join(rows)
