"""The Studio's web app: server-rendered pages (Jinja2) on Starlette, a little JavaScript.

Wiring only: ``create_app(settings)`` builds the order index (fed from Kafka), the design
sessions, the worker pool and the routes; nothing connects at import time. The Studio is its
own process: if it stops, `sculpt serve` does not notice.

    /orders                       recent orders (filter: ?state=, ?error_code=)
    /orders/{id}                  timeline, errors, dead letters, GLB, preview, mold, report
    /orders/{id}/dead-letters/{n} the original bytes of a dead letter (download)
    POST /orders/{id}/replay      to the QA topic or the input          (token + CSRF)
    POST /orders/{id}/reproduce   re-run, compare sha256 side by side   (token + CSRF)
    /design                       upload a picture
    /design/{id}                  the sculpture and its mold; adjust and re-run
    POST /design/{id}/order       send the design as a real OrderPlaced (token + CSRF)
    /artifacts/{sha256}           artifact bytes by content hash (ETag, ranges)
    /vendor/...                   model-viewer and three.js from npm (no CDN)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sculptsvc.artifacts import media_type
from sculptsvc.errors import SculptError
from sculptsvc.events import OrderState
from sculptsvc.imaging import decode_image_with_settings
from sculptsvc.logging import configure_logging, get_logger
from sculptsvc.settings import Settings, get_settings
from sculptsvc.store import ArtifactStore, LocalArtifactStore
from sculptsvc.studio import actions
from sculptsvc.studio.artifacts import SHA256_RE, artifact_response, download_name
from sculptsvc.studio.design import (
    IMAGE_MEDIA_TYPES,
    REPORT_NAME,
    Design,
    DesignRun,
    Designs,
    InvalidDesign,
    changes,
    params_from_form,
)
from sculptsvc.studio.jobs import PipelineJob, init_studio_worker, run_job
from sculptsvc.studio.orders import OrderIndex, follow
from sculptsvc.studio.security import (
    Forbidden,
    SecurityHeaders,
    actor_for,
    check_csrf,
    template_security,
)

log = get_logger(__name__)

HERE = Path(__file__).resolve().parent
VENDOR_FILES = {
    "model-viewer-module.min.js": "@google/model-viewer/dist/model-viewer-module.min.js",
    "three/three.module.min.js": "three/build/three.module.min.js",
    "three/three.core.min.js": "three/build/three.core.min.js",
    "three/addons/loaders/STLLoader.js": "three/examples/jsm/loaders/STLLoader.js",
    "three/addons/controls/OrbitControls.js": "three/examples/jsm/controls/OrbitControls.js",
}
"""The only files served from ``SCULPT_STUDIO_ASSETS_DIR`` (fixed names: no traversal)."""
MAX_FORM_FIELDS = 32
VENDOR_CACHE = "public, max-age=3600"
ARTIFACT_NAMES_SHOWN = ("model.glb", "preview.png", "mold_a.stl", "mold_b.stl", "mold.3mf")


@dataclass
class Studio:
    """Everything the routes share."""

    settings: Settings
    store: ArtifactStore
    index: OrderIndex
    designs: Designs
    pool: Any = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    reproductions: dict[str, list[actions.Reproduction]] = field(default_factory=dict)
    action_log: dict[str, list[actions.ActionRecord]] = field(default_factory=dict)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run_pipeline(self, job: PipelineJob) -> dict[str, bytes]:
        if self.pool is None:
            raise SculptError("the Studio's worker pool is not running")
        return await self.pool.submit(job)

    def store_artifacts(self, artifacts: dict[str, bytes]) -> dict[str, Any]:
        refs = {}
        for name, data in artifacts.items():
            ref = self.store.put(data, media_type(name))
            self.index.remember(ref)
            refs[name] = ref
        return refs


def create_app(
    settings: Settings | None = None,
    *,
    store: ArtifactStore | None = None,
    start_pool: bool = True,
    follow_kafka: bool = True,
) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    studio = Studio(
        settings=settings,
        store=store or LocalArtifactStore(settings.artifact_root),
        index=OrderIndex(settings.studio_max_orders),
        designs=Designs(settings.studio_max_designs),
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["states"] = [s.value for s in OrderState]
    templates.env.globals["bounds"] = form_bounds()
    templates.env.filters["when"] = _when
    templates.env.filters["ml"] = lambda v: f"{v:,.2f}"

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.update(
            template_security(request),
            studio_kafka=studio.index.problem,
            actions_enabled=bool(settings.studio_tokens),
        )
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    # -- orders ---------------------------------------------------------------------------

    async def orders_page(request: Request) -> Response:
        state = request.query_params.get("state") or None
        code = request.query_params.get("error_code") or None
        rows = studio.index.listing(state=state, error_code=code, limit=settings.studio_page_size)
        return render(
            request,
            "orders.html",
            orders=rows,
            state=state,
            error_code=code,
            error_codes=studio.index.error_codes(),
            total=len(studio.index.orders),
        )

    async def order_page(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        order = studio.index.get(order_id)
        if order is None:
            return render(request, "missing.html", 404, what=f"order {order_id}")
        revision = max([order.revision, *order.models, *order.molds])
        model, mold = order.models.get(revision), order.molds.get(revision)
        report = await _read_json(studio.store, mold.report) if mold else None
        return render(
            request,
            "order.html",
            order=order,
            revision=revision,
            model=model,
            mold=mold,
            report=report,
            reproductions=studio.reproductions.get(order_id, []),
            action_log=studio.action_log.get(order_id, []),
        )

    async def dead_letter_original(request: Request) -> Response:
        order = studio.index.get(request.path_params["order_id"])
        number = request.path_params["number"]
        if order is None or not 0 <= number < len(order.letters):
            raise HTTPException(404)
        letter = order.letters[number]
        data = letter.original_bytes()
        if data is None:
            data = await asyncio.to_thread(studio.store.get, letter.event.original_value_ref)
        name = f"{order.order_id}-{letter.at.partition}-{letter.at.offset}.bin"
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def replay(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        form, actor = await _authorised(request, settings)
        source = "dlq" if form.get("source") == "dlq" else "orders"
        target = "input" if form.get("target") == "input" else "qa"
        record = await actions.replay(settings, order_id, source, target, actor)
        studio.action_log.setdefault(order_id, []).append(record)
        return RedirectResponse(f"/orders/{order_id}", status_code=303)

    async def reproduce(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        _, actor = await _authorised(request, settings)
        order = studio.index.get(order_id)
        if order is None or not order.models:
            raise HTTPException(404, f"order {order_id} has no published model to reproduce")
        job = actions.Reproduction(order_id=order_id, actor=actor)
        studio.reproductions.setdefault(order_id, []).append(job)
        studio.action_log.setdefault(order_id, []).append(
            actions.ActionRecord.now(actor, "reproduce", "started")
        )
        studio.spawn(actions.reproduce(studio, order, job))
        return RedirectResponse(f"/orders/{order_id}", status_code=303)

    # -- design ---------------------------------------------------------------------------

    async def design_form(request: Request) -> Response:
        return render(request, "design_new.html", error=None)

    async def design_upload(request: Request) -> Response:
        _check_body_size(request, settings)
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
        _csrf(request, form)
        upload = form.get("picture")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return render(request, "design_new.html", 400, error="Choose a picture to upload.")
        data = await upload.read(settings.max_image_bytes + 1)
        try:
            media_type, data = await asyncio.to_thread(_checked_picture, data, settings)
            params = params_from_form(_strings(form))
        except SculptError as exc:
            log.info("studio.upload_refused", code=exc.code, reason=exc.message)
            return render(
                request,
                "design_new.html",
                422,
                error=f"This picture cannot be used: {exc.message}",
                error_code=exc.code,
            )
        except InvalidDesign as exc:
            return render(request, "design_new.html", 422, error=str(exc))
        image_ref = await asyncio.to_thread(studio.store.put, data, media_type)
        studio.index.remember(image_ref)
        design = studio.designs.add(data, media_type, upload.filename or "picture", image_ref)
        try:
            run = design.new_run(params, settings)
        except InvalidDesign as exc:
            return render(request, "design_new.html", 422, error=str(exc))
        studio.spawn(_run_design(studio, design, run))
        return RedirectResponse(f"/design/{design.id}", status_code=303)

    def _design(request: Request) -> Design:
        design = studio.designs.get(request.path_params["design_id"])
        if design is None:
            raise HTTPException(404, "no such design (the Studio keeps recent ones only)")
        return design

    async def design_page(request: Request) -> Response:
        design = _design(request)
        shown = design.latest_done()
        report = shown.report if shown else None
        return render(
            request,
            "design.html",
            design=design,
            run=design.latest,
            shown=shown,
            report=report,
            refs=shown.refs if shown else {},
            changes=changes(design.previous_done(shown), shown) if shown else [],
            previous=design.previous_done(shown) if shown else None,
            error=request.query_params.get("error"),
        )

    async def design_status(request: Request) -> Response:
        run = _design(request).latest
        if run is None:
            return JSONResponse({"state": "none"})
        return JSONResponse(
            {
                "run": run.number,
                "state": run.state,
                "error_code": run.error_code,
                "error": run.error_message,
            }
        )

    async def design_rerun(request: Request) -> Response:
        design = _design(request)
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        _csrf(request, form)
        try:
            run = design.new_run(params_from_form(_strings(form)), settings)
        except InvalidDesign as exc:
            return render_design_error(request, design, str(exc))
        studio.spawn(_run_design(studio, design, run))
        return RedirectResponse(f"/design/{design.id}", status_code=303)

    def render_design_error(request: Request, design: Design, message: str) -> Response:
        shown = design.latest_done()
        return render(
            request,
            "design.html",
            422,
            design=design,
            run=design.latest,
            shown=shown,
            report=shown.report if shown else None,
            refs=shown.refs if shown else {},
            changes=[],
            previous=None,
            error=message,
        )

    async def design_send(request: Request) -> Response:
        design = _design(request)
        form, actor = await _authorised(request, settings)
        run = design.latest_done()
        if run is None:
            return render_design_error(request, design, "Nothing to send yet: no finished run.")
        order_id = str(form.get("order_id") or "").strip()
        try:
            order = run.params.to_order(
                order_id, design.inline_image(), correlation_id=f"studio-design-{design.id}"
            )
            await actions.send_order(settings, order, actor)
        except (InvalidDesign, actions.ActionFailed) as exc:
            return render_design_error(request, design, str(exc))
        design.sent_orders.append(order.order_id)
        return RedirectResponse(f"/orders/{order.order_id}", status_code=303)

    # -- artifacts and assets ---------------------------------------------------------------

    async def artifact(request: Request) -> Response:
        sha = request.path_params["sha256"]
        ref = studio.index.artifacts.get(sha) if SHA256_RE.match(sha) else None
        if ref is None:
            raise HTTPException(404, "unknown artifact")
        data = await asyncio.to_thread(studio.store.get, ref)
        return artifact_response(
            ref,
            data,
            range_header=request.headers.get("range"),
            if_none_match=request.headers.get("if-none-match"),
            download_name=download_name(ref) if "download" in request.query_params else None,
        )

    async def vendor(request: Request) -> Response:
        relative = VENDOR_FILES.get(request.path_params["name"])
        if relative is None:
            raise HTTPException(404)
        path = settings.studio_assets_dir / relative
        if not path.is_file():
            raise HTTPException(
                503, f"{relative} is not installed: run scripts/bootstrap (npm, tools/)"
            )
        return FileResponse(
            path,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": VENDOR_CACHE},  # fixed npm versions; bootstrap updates
        )

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "kafka": studio.index.problem or "ok",
                "orders": len(studio.index.orders),
                "pool": studio.pool is not None,
            }
        )

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def root(request: Request) -> Response:
        return RedirectResponse("/orders", status_code=302)

    async def forbidden(request: Request, exc: Exception) -> Response:
        log.warning("studio.forbidden", path=request.url.path, reason=str(exc))
        return render(request, "missing.html", 403, what=None, message=str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        detail = getattr(exc, "detail", "") or "not found"
        status = getattr(exc, "status_code", 404)
        return render(request, "missing.html", status, what=None, message=detail)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        follower = asyncio.create_task(follow(settings, studio.index)) if follow_kafka else None
        if start_pool:
            from sculptsvc.workers import WorkerPool
            from sculptsvc.workers.pool import PoolTuning

            studio.pool = WorkerPool(
                run_job,
                partial(init_studio_worker, settings.model_dump_json()),
                workers=settings.studio_workers,
                job_timeout_s=settings.job_timeout_s,
                max_attempts=1,
                log_level=settings.log_level,
                log_format=settings.log_format,
                tuning=PoolTuning(start_timeout_s=settings.worker_start_timeout_s),
                name="sculpt-studio-worker",
            )
            await studio.pool.start()
        log.info("studio.ready", host=settings.studio_host, port=settings.studio_port)
        try:
            yield
        finally:
            for task in [*studio.tasks, *([follower] if follower else [])]:
                task.cancel()
            await asyncio.gather(*studio.tasks, return_exceptions=True)
            if follower:
                await asyncio.gather(follower, return_exceptions=True)
            if studio.pool is not None:
                await studio.pool.close(0.0)

    routes = [
        Route("/", root),
        Route("/health", health),
        Route("/favicon.ico", favicon),
        Route("/orders", orders_page),
        Route("/orders/{order_id}", order_page),
        Route("/orders/{order_id}/dead-letters/{number:int}", dead_letter_original),
        Route("/orders/{order_id}/replay", replay, methods=["POST"]),
        Route("/orders/{order_id}/reproduce", reproduce, methods=["POST"]),
        Route("/design", design_form),
        Route("/design", design_upload, methods=["POST"]),
        Route("/design/{design_id}", design_page),
        Route("/design/{design_id}/status.json", design_status),
        Route("/design/{design_id}/runs", design_rerun, methods=["POST"]),
        Route("/design/{design_id}/order", design_send, methods=["POST"]),
        Route("/artifacts/{sha256}", artifact),
        # scripts and styles gzip-compressed (a third of their size); artifacts are not, so
        # their byte ranges stay ranges of the stored bytes
        Mount("/vendor", GZipMiddleware(Starlette(routes=[Route("/{name:path}", vendor)]))),
        Mount("/static", GZipMiddleware(StaticFiles(directory=HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={Forbidden: forbidden, HTTPException: not_found},
    )
    app.add_middleware(SecurityHeaders)
    app.state.studio = studio
    return app


# --- helpers --------------------------------------------------------------------------------


def form_bounds() -> dict[str, tuple[float, float, float]]:
    """(min, max, default) of each number in the design form, from the order contract."""
    from typing import get_args

    from sculptsvc.mesh import MeshParams
    from sculptsvc.options import PipelineOptions, Smoothing

    def limits(metadata: list[Any]) -> tuple[float, float]:
        lo = next(m.ge for m in metadata if hasattr(m, "ge"))
        hi = next(m.le for m in metadata if hasattr(m, "le"))
        return lo, hi

    fields = PipelineOptions.model_fields
    out = {
        name: (*limits(fields[name].metadata), fields[name].default)
        for name in ("size_mm", "wall_mm", "relief_depth", "thickness")
    }
    smooth_steps = MeshParams.model_fields["smooth_steps"].default
    out["smoothing"] = (*limits(get_args(Smoothing)[1].metadata), smooth_steps)
    return out


def _csrf(request: Request, form: FormData) -> None:
    check_csrf(request, form)


async def _authorised(request: Request, settings: Settings) -> tuple[FormData, str]:
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    check_csrf(request, form)
    return form, actor_for(settings, form)


def _strings(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _check_body_size(request: Request, settings: Settings) -> None:
    """Refuse an upload bigger than the image limit (plus form overhead) before reading it."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_image_bytes + 64 * 1024:
        raise HTTPException(413, f"the upload is larger than {settings.max_image_bytes} bytes")


def _checked_picture(data: bytes, settings: Settings) -> tuple[str, bytes]:
    """The intake's own decoder and limits; formats orders cannot carry become PNG."""
    pixels = decode_image_with_settings(data, settings)
    fmt = Image.open(io.BytesIO(data)).format or ""
    if fmt in IMAGE_MEDIA_TYPES:
        return IMAGE_MEDIA_TYPES[fmt], data
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "image/png", buffer.getvalue()


async def _run_design(studio: Studio, design: Design, run: DesignRun) -> None:
    try:
        artifacts = await studio.run_pipeline(PipelineJob(design.image, run.options))
        refs = await asyncio.to_thread(studio.store_artifacts, artifacts)
        run.finish(refs, artifacts[REPORT_NAME])
        log.info("studio.design_run", design=design.id, run=run.number, seconds=run.seconds)
    except SculptError as exc:
        run.fail(exc.code, exc.message)
        log.info("studio.design_failed", design=design.id, run=run.number, code=exc.code)
    except Exception as exc:  # a bug shows on the page, the Studio keeps serving
        log.exception("studio.design_crashed", design=design.id)
        run.fail("studio_error", f"{type(exc).__name__}: {exc}")


async def _read_json(store: ArtifactStore, ref: Any) -> dict[str, Any] | None:
    try:
        report = json.loads(await asyncio.to_thread(store.get, ref))
        if not isinstance(report, dict) or not {"mesh", "mold_report"} <= report.keys():
            raise ValueError("not a pipeline report.json")
        return report
    except (SculptError, OSError, ValueError) as exc:
        log.warning("studio.report_unreadable", uri=ref.uri, reason=str(exc))
        return None


def _when(value: datetime | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
