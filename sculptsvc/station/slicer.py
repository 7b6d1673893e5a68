"""Slicing a mold half into G-code with the PrusaSlicer CLI and a named profile.

A profile is a PrusaSlicer ``--load`` file: a name resolves to ``profiles/NAME.ini`` beside
this module, anything ending in ``.ini`` is a path. Its ``filament_type`` must match the
order's mold material: a PETG mold sliced with PLA temperatures is a failed print.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sculptsvc.errors import ConfigurationError, ProcessingFailed

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
OUTPUT_TAIL_CHARS = 600


class SlicingFailed(ProcessingFailed):
    code = "slicing_failed"


class MaterialMismatch(ProcessingFailed):
    code = "material_mismatch"


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    filament_type: str | None

    @classmethod
    def resolve(cls, name_or_path: str) -> Profile:
        """A built-in name or an .ini path; an unknown one is a configuration error."""
        path = (
            Path(name_or_path)
            if name_or_path.endswith(".ini")
            else PROFILE_DIR / f"{name_or_path}.ini"
        )
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.ini")))
            raise ConfigurationError(
                f"SCULPT_STATION_PROFILE={name_or_path!r}: no such profile (built-in: {known}; "
                "or a path ending in .ini)"
            )
        match = re.search(r"^filament_type\s*=\s*(\S+)", path.read_text(), re.MULTILINE)
        return cls(path.stem, path.resolve(), match.group(1) if match else None)

    def check_material(self, material: str) -> None:
        if self.filament_type is not None and self.filament_type.lower() != material.lower():
            raise MaterialMismatch(
                f"profile {self.name!r} is for {self.filament_type}, the mold is ordered in "
                f"{material}"
            )


def slice_stl(stl: Path, gcode: Path, profile: Profile, command: str, timeout_s: float) -> None:
    """Write ``gcode`` from ``stl``; ``SlicingFailed`` with the slicer's last words if not."""
    args = [command, "--export-gcode", "--load", str(profile.path), "-o", str(gcode), str(stl)]
    try:
        run = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise SlicingFailed(f"{stl.name}: the slicer ran past {timeout_s:.0f} s") from None
    except OSError as exc:
        raise SlicingFailed(f"cannot run {command}: {exc}") from None
    output = (run.stdout + run.stderr)[-OUTPUT_TAIL_CHARS:]
    if run.returncode != 0 or not gcode.is_file() or gcode.stat().st_size == 0:
        raise SlicingFailed(f"{stl.name}: slicer exit {run.returncode}: {output.strip()}")
