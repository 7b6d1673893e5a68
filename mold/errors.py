"""Errors of the mold stage, each with a machine-readable ``code``.

    MoldError                     base; ``code``, ``message``, ``detail`` (JSON-safe dict)
    ├── InvalidPart               the part cannot be cast as given: reject the order
    │   ├── PartNotManifold       not one closed, consistently oriented surface
    │   ├── PartDegenerate        bad arrays, non-finite values, no volume
    │   ├── PartSelfIntersecting  the surface passes through itself: no defined inside
    │   ├── PartDisconnected      several separate bodies: one pour cannot fill them
    │   └── PartTooThin           thinner on average than a pour fills (a sheet, a film)
    ├── InvalidSpec               the spec does not fit this part (e.g. sprue wider than it)
    └── MoldGenerationFailed      valid input, but no castable mold came out
        ├── KeysDoNotFit          no room for the registration keys
        └── MoldGateFailed        a gate check failed; ``check`` names it

``rejects_input`` tells the service which way to map an error without knowing every class:
``True`` -> ``sculptsvc.errors.UnrepairableMesh`` (or ``InvalidEvent`` for ``InvalidSpec``),
``False`` -> ``sculptsvc.errors.MoldFailed``. This package never imports ``sculptsvc``.
Codes are a public contract: add, never rename.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MoldError(Exception):
    """Base of every error ``make_mold`` raises on purpose."""

    code: ClassVar[str] = "mold_error"
    rejects_input: ClassVar[bool] = False

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidPart(MoldError):
    """The part itself is unusable; retrying gives the same answer."""

    code = "invalid_part"
    rejects_input = True


class PartNotManifold(InvalidPart):
    code = "part_not_manifold"


class PartDegenerate(InvalidPart):
    code = "part_degenerate"


class PartSelfIntersecting(InvalidPart):
    code = "part_self_intersecting"


class PartDisconnected(InvalidPart):
    code = "part_disconnected"


class PartTooThin(InvalidPart):
    code = "part_too_thin"


class InvalidSpec(MoldError):
    """The spec is valid on its own but impossible for this part."""

    code = "invalid_spec"
    rejects_input = True


class SprueDoesNotFit(MoldError):
    """The sprue does not fit the part along one parting (the part's narrower side across
    the pull): another parting may give it room, so the mold tries the next one first."""


class PartTooThinForSprue(PartTooThin, SprueDoesNotFit):
    """No room for the smallest sprue (none was asked for): the part is too thin."""


class SprueTooLarge(InvalidSpec, SprueDoesNotFit):
    """The sprue the order asked for is wider than the part allows."""


class MoldGenerationFailed(MoldError):
    """The input was fine, but the mold could not be made castable."""

    code = "mold_generation_failed"


class KeysDoNotFit(MoldGenerationFailed):
    code = "keys_do_not_fit"


class MoldGateFailed(MoldGenerationFailed):
    """A gate check failed; nothing may leave. ``check`` is the failing check's name."""

    code = "mold_gate_failed"

    def __init__(self, check: str, message: str, **detail: Any) -> None:
        super().__init__(message, check=check, **detail)
        self.check = check

    def __str__(self) -> str:
        return f"{self.code}[{self.check}]: {self.message}"
