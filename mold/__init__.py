"""Two-part mold generation with manifold3d: part arrays + spec in, gated halves + report out.

Imports neither ``sculptsvc`` nor FastStream and touches no disk (see ``sculptsvc/commands/
mold.py`` for the file-writing adapter)::

    from mold import MoldSpec, make_mold
    result = make_mold(vertices, faces, MoldSpec(size_mm=80, wall_mm=4))
    result.stl_a, result.stl_b, result.three_mf, result.report.model_dump_json()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mold.core import MoldResult, crossing_triangles, make_mold, part_self_intersections
    from mold.errors import (
        InvalidPart,
        InvalidSpec,
        KeysDoNotFit,
        MoldError,
        MoldGateFailed,
        MoldGenerationFailed,
        PartDegenerate,
        PartDisconnected,
        PartNotManifold,
        PartSelfIntersecting,
        PartTooThin,
        PartTooThinForSprue,
        SprueDoesNotFit,
        SprueTooLarge,
    )
    from mold.report import MoldReport
    from mold.spec import MoldParams, MoldSpec

# Names resolve on first use, so ``mold.spec`` (the order bounds) and ``mold.errors`` import
# without manifold3d and numpy.
_EXPORTS = {
    "MoldResult": "mold.core",
    "make_mold": "mold.core",
    "crossing_triangles": "mold.core",
    "part_self_intersections": "mold.core",
    "MoldReport": "mold.report",
    "MoldParams": "mold.spec",
    "MoldSpec": "mold.spec",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name, "mold.errors" if name in __all__ else None)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "InvalidPart",
    "InvalidSpec",
    "KeysDoNotFit",
    "MoldError",
    "MoldGateFailed",
    "MoldGenerationFailed",
    "MoldParams",
    "MoldReport",
    "MoldResult",
    "MoldSpec",
    "PartDegenerate",
    "PartDisconnected",
    "PartNotManifold",
    "PartSelfIntersecting",
    "PartTooThin",
    "PartTooThinForSprue",
    "SprueDoesNotFit",
    "SprueTooLarge",
    "crossing_triangles",
    "make_mold",
    "part_self_intersections",
]
