"""What of a model's look a copy of it kept: material slots, factors, extensions, vertex streams.

`signature(model)` describes every material a primitive uses, by name; `differences(source, copy)`
lists, in words, whatever the copy lost or changed. The material-fidelity table of the tests and
of `make bench` is these two functions over real GLBs, each export profile and each LOD level.
"""

from __future__ import annotations

import json
from typing import Any

from .model import Model, TextureRef

# Streams a simplified level may legitimately lose: source tangents do not fit simplified triangles
# (glTF then asks engines to generate MikkTSpace tangents; the export manifest says which was done).
OPTIONAL_ON_SIMPLIFIED = frozenset({"tangents"})


def _plain(value: Any) -> Any:
    if isinstance(value, TextureRef):
        return {"texture": True, "tex_coord": value.uv_set, "scale": round(value.scale, 4),
                "transform": None if value.transform is None else [round(float(v), 4) for v in
                                                                    value.transform.matrix().reshape(-1)]}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 4)
    return value


def signature(model: Model) -> dict[str, dict[str, Any]]:
    """Per used material name: its slots (with UV set, scale and transform), factors, alpha,
    extensions (values included) and the vertex streams of the primitives drawn with it."""
    out: dict[str, dict[str, Any]] = {}
    for prim in model.primitives:
        if not prim.triangle_count:
            continue
        m = model.materials[prim.material]
        entry = out.setdefault(m.name, {
            "slots": {slot: _plain(ref) for slot, ref in m.texture_slots()},
            "factors": _plain({"base_color": list(m.base_color_factor), "metallic": m.metallic,
                               "roughness": m.roughness, "emissive": list(m.emissive_factor)}),
            "alpha": [m.alpha_mode, round(m.alpha_cutoff, 4) if m.alpha_mode == "MASK" else None, m.double_sided],
            "extensions": _plain(m.extensions),
            "streams": set(),
            "variants": len(model.variants),
        })
        entry["streams"] |= set(prim.streams())
    return out


def differences(source: dict[str, dict[str, Any]], copy: dict[str, dict[str, Any]], *,
                simplified: bool = False, materials_may_vanish: bool = False) -> list[str]:
    """Everything of `source` (a signature) that `copy` lost or changed, one line each.

    simplified: the copy's geometry was simplified, so losing OPTIONAL_ON_SIMPLIFIED streams is fine.
    materials_may_vanish: a material whose triangles were all simplified away is not a loss.
    """
    problems = []
    for name, want in source.items():
        got = copy.get(name)
        if got is None:
            if not materials_may_vanish:
                problems.append(f"material {name!r} is missing")
            continue
        for key in ("slots", "factors", "alpha", "extensions", "variants"):
            if got[key] != want[key]:
                problems.append(f"material {name!r} {key}: {json.dumps(want[key], sort_keys=True)[:200]} -> "
                                f"{json.dumps(got[key], sort_keys=True)[:200]}")
        lost = want["streams"] - got["streams"] - (OPTIONAL_ON_SIMPLIFIED if simplified else frozenset())
        if lost:
            problems.append(f"material {name!r} lost vertex streams {sorted(lost)}")
    return problems


def row(model: Model) -> dict[str, Any]:
    """One line of the fidelity table: counts a person can scan."""
    sig = signature(model)
    return {
        "materials": len(sig),
        "slots": sum(len(s["slots"]) for s in sig.values()),
        "extensions": sorted({e for s in sig.values() for e in s["extensions"]}),
        "streams": sorted({a for s in sig.values() for a in s["streams"]}),
        "images": len(model.texture_uses()),
        "variants": len(model.variants),
    }
