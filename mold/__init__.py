"""Two-part mold generation with manifold3d: part arrays + spec in, gated halves + report out.

Imports neither ``sculptsvc`` nor FastStream and touches no disk (see ``sculptsvc/commands/
mold.py`` for the file-writing adapter)::

    from mold import MoldSpec, make_mold
    result = make_mold(vertices, faces, MoldSpec(size_mm=80, wall_mm=4))
    result.stl_a, result.stl_b, result.three_mf, result.report.model_dump_json()
"""

from mold.core import MoldResult, make_mold, part_self_intersections
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
)
from mold.report import MoldReport
from mold.spec import MoldParams, MoldSpec

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
    "make_mold",
    "part_self_intersections",
]
