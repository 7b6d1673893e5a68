"""Design sessions: one picture, a series of runs with adjusted parameters, and what changed.

A design's parameters are an ``OrderPlaced`` in all but the order id: the form is turned
into one (so the contract's bounds and messages are the only ones), the pipeline options
come from ``options_from_order`` exactly as the service derives them, and "Send as order"
publishes that same event with an explicit seed. A replay of the order therefore
reproduces the design byte for byte.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from sculptsvc.events import ArtifactRef, InlineImage, OrderPlaced
from sculptsvc.pipeline import REPORT_NAME, PipelineOptions, options_from_order
from sculptsvc.settings import Settings

DESIGN_SEED = 0
"""Seed of every design (sent with the order, so the factory repeats the design exactly)."""
IMAGE_MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
}
"""What ``OrderPlaced`` can carry inline; other decodable formats are converted to PNG."""


class InvalidDesign(ValueError):
    """Form values the order contract refuses; the message names each field."""


@dataclass(frozen=True)
class DesignParams:
    """What the form sets; ``None`` leaves a field to the service's default."""

    mode: str = "multicolor"
    color: str | None = None
    size_mm: float | None = None
    wall_mm: float | None = None
    material: str | None = None
    parting: str = "auto"
    relief_depth: float | None = None
    thickness: float | None = None
    smoothing: int | None = None

    def order_document(self) -> dict[str, Any]:
        """The OrderPlaced fields (without id and image) these parameters stand for."""
        doc: dict[str, Any] = {"mode": self.mode, "seed": DESIGN_SEED}
        if self.color:
            doc["color"] = self.color
        if self.size_mm is not None:
            doc["size_mm"] = self.size_mm
        mold = {"parting": self.parting}
        if self.wall_mm is not None:
            mold["wall_mm"] = self.wall_mm  # type: ignore[assignment]
        if self.material:
            mold["material"] = self.material
        doc["mold"] = mold
        shape = {
            k: v
            for k, v in (
                ("relief_depth", self.relief_depth),
                ("thickness", self.thickness),
                ("smoothing", self.smoothing),
            )
            if v is not None
        }
        if shape:
            doc["shape"] = shape
        return doc

    def to_order(self, order_id: str, image: InlineImage, **extra: Any) -> OrderPlaced:
        try:
            return OrderPlaced.model_validate(
                {"order_id": order_id, "image": image, **self.order_document(), **extra}
            )
        except ValidationError as exc:
            raise InvalidDesign(
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'design'}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                )
            ) from None


def params_from_form(form: dict[str, str]) -> DesignParams:
    """Form strings to parameters; empty fields mean the default."""

    def number(name: str, kind: type = float) -> Any:
        text = (form.get(name) or "").strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            raise InvalidDesign(f"{name}: {text!r} is not a number") from None

    mode = form.get("mode") or "multicolor"
    return DesignParams(
        mode=mode,
        color=(form.get("color") or "").strip() or None,
        size_mm=number("size_mm"),
        wall_mm=number("wall_mm"),
        material=(form.get("material") or "").strip() or None,
        parting=form.get("parting") or "auto",
        relief_depth=number("relief_depth"),
        thickness=number("thickness"),
        smoothing=number("smoothing", int),
    )


@dataclass
class DesignRun:
    number: int
    params: DesignParams
    options: PipelineOptions
    state: Literal["running", "done", "failed"] = "running"
    error_code: str | None = None
    error_message: str | None = None
    refs: dict[str, ArtifactRef] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    seconds: float | None = None

    def finish(self, refs: dict[str, ArtifactRef], report_json: bytes) -> None:
        self.refs = refs
        self.report = json.loads(report_json)
        self.state = "done"
        self.seconds = round(time.time() - self.started, 2)

    def fail(self, code: str, message: str) -> None:
        self.state, self.error_code, self.error_message = "failed", code, message
        self.seconds = round(time.time() - self.started, 2)

    def summary(self) -> dict[str, float | int | str]:
        """The numbers a person compares between runs."""
        if self.report is None:
            return {}
        mold = self.report["mold_report"]
        return {
            "triangles": self.report["mesh"]["triangles"],
            "sculpture volume (ml)": mold["part"]["volume_ml"],
            "cavity volume (ml)": mold["cavity_volume_ml"],
            "pour volume (ml)": mold["pour_volume_ml"],
            "mold material (ml)": mold["mold_material_ml"],
            "parting": mold["parting"]["chosen"],
            "half A triangles": mold["halves"][0]["triangles"],
            "half B triangles": mold["halves"][1]["triangles"],
            "gate": "passed" if mold["gate"]["passed"] else "FAILED",
        }


@dataclass(frozen=True)
class Change:
    name: str
    before: object
    after: object

    @property
    def delta(self) -> str:
        if isinstance(self.before, int | float) and isinstance(self.after, int | float):
            diff = self.after - self.before
            pct = f" ({100 * diff / self.before:+.1f} %)" if self.before else ""
            return f"{diff:+.4g}{pct}"
        return "changed" if self.before != self.after else ""


def changes(before: DesignRun | None, after: DesignRun) -> list[Change]:
    """Every parameter and every number that differs between two finished runs."""
    if before is None or before.report is None or after.report is None:
        return []
    out = [
        Change(f"option {name}", value, getattr(after.options, name))
        for name, value in before.options.model_dump().items()
        if getattr(after.options, name) != value
    ]
    b, a = before.summary(), after.summary()
    out += [Change(name, b.get(name), a[name]) for name in a if b.get(name) != a[name]]
    return out


@dataclass
class Design:
    id: str
    image: bytes
    media_type: str
    filename: str
    image_ref: ArtifactRef
    runs: list[DesignRun] = field(default_factory=list)
    sent_orders: list[str] = field(default_factory=list)

    def inline_image(self) -> InlineImage:
        return InlineImage(
            media_type=self.media_type,  # type: ignore[arg-type]
            data_base64=base64.b64encode(self.image).decode("ascii"),
        )

    def new_run(self, params: DesignParams, settings: Settings) -> DesignRun:
        """Validate ``params`` as an order and start the run's record (``InvalidDesign``)."""
        order = params.to_order(f"design-{self.id[:16]}", self.inline_image())
        run = DesignRun(len(self.runs) + 1, params, options_from_order(order, settings))
        self.runs.append(run)
        return run

    @property
    def latest(self) -> DesignRun | None:
        return self.runs[-1] if self.runs else None

    def latest_done(self) -> DesignRun | None:
        done = [r for r in self.runs if r.state == "done"]
        return done[-1] if done else None

    def previous_done(self, run: DesignRun) -> DesignRun | None:
        done = [r for r in self.runs if r.state == "done" and r.number < run.number]
        return done[-1] if done else None


class Designs:
    """The most recent ``limit`` design sessions (ids are random and unguessable)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, Design] = OrderedDict()

    def add(self, image: bytes, media_type: str, filename: str, image_ref: ArtifactRef) -> Design:
        design = Design(secrets.token_hex(16), image, media_type, filename, image_ref)
        self._items[design.id] = design
        while len(self._items) > self.limit:
            self._items.popitem(last=False)
        return design

    def get(self, design_id: str) -> Design | None:
        return self._items.get(design_id)


__all__ = ["REPORT_NAME", "Design", "DesignParams", "DesignRun", "Designs", "changes"]
