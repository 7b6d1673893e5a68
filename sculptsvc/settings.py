"""Every knob of the service, in one place, read from ``SCULPT_*`` environment variables.

``docs/operations.md`` has a reference table generated from this class
(``python -m sculptsvc.docs``); a test fails when the two drift.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sculptsvc.options import TARGET_FACES_DEFAULT, TargetFaces


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCULPT_", extra="ignore")

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    group_id: str = Field("sculptsvc", description="Consumer group of the order consumers.")
    transactional_id_prefix: str = Field(
        "sculptsvc", description="Prefix of the per-partition transactional producer ids."
    )
    progress_in_transactions: bool = Field(
        False,
        description="Publish each progress status (accepted, stage ends) in its own "
        "transaction, fenced like the outcome, at about 3 ms more per status. Off: an "
        "idempotent producer (acks=all) sends them, at least once as the contract says.",
    )
    session_timeout_ms: int = Field(30_000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(3_000, description="Consumer heartbeat interval.")
    max_poll_interval_ms: int = Field(
        300_000, description="Longest gap between polls before the group evicts a consumer."
    )

    # --- Topics (key = order id on every topic) -----------------------------------------
    topic_orders: str = Field("sculpt.orders.v1", description="Input: OrderPlaced events.")
    topic_status: str = Field("sculpt.order-status.v1", description="Output: OrderStatus.")
    topic_models: str = Field("sculpt.models.v1", description="Output: ModelReady (GLB).")
    topic_molds: str = Field("sculpt.molds.v1", description="Output: MoldReady (STL, 3MF).")
    topic_dlq: str = Field("sculpt.orders.dlq.v1", description="Output: DeadLetter.")
    topic_qa: str = Field("sculpt.orders.qa.v1", description="QA replay target topic.")
    topic_station_jobs: str = Field(
        "sculpt.station-jobs.v1", description="Output of `sculpt station`: StationJob."
    )

    # --- Artifacts ---------------------------------------------------------------------
    artifact_root: Path = Field(
        Path("var/artifacts"),
        description="Directory of the local artifact store, used when `store_url` is unset.",
    )
    store_url: str | None = Field(
        None,
        description="Artifact store and ledger: `file:///abs/dir` (one host) or "
        "`s3://bucket/prefix` (any S3-compatible server; credentials from the standard AWS "
        "chain). Unset: `file://` at `artifact_root`.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 API endpoint for MinIO, Ceph RGW, s3proxy...; unset: AWS."
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="Bucket in the path or the host name; auto: path with an endpoint."
    )
    s3_connect_timeout_s: float = Field(5.0, gt=0, description="S3 connect timeout.")
    s3_read_timeout_s: float = Field(30.0, gt=0, description="S3 read timeout per request.")
    s3_max_attempts: int = Field(
        3, ge=1, description="Attempts per S3 request (botocore standard retries)."
    )
    outcome_overlap_s: float = Field(
        2.0,
        ge=0,
        description="How long a completed order's transaction may stay open while its "
        "artifacts upload and its ledger record is written. Longer (a slow store), it is "
        "aborted and the outcome published after them: an open transaction holds back what "
        "read_committed consumers see on the output topics. 0: never overlap.",
    )
    store_retry_max_backoff_s: float = Field(
        30.0,
        gt=0,
        description="While the store is unreachable, orders wait and retry, doubling from "
        "`retry_backoff_s` up to this; they are never dead-lettered for it.",
    )

    # --- Work --------------------------------------------------------------------------
    workers: int = Field(1, ge=1, description="Worker processes (one per GPU on GPU hosts).")
    stage_helpers: Literal["auto", "on", "off"] = Field(
        "auto",
        description="A helper process per worker makes the mold and the preview while the "
        "worker writes the GLB (same bytes, about 0.3 s less per order on 2 cores); `sculpt "
        "mesh`'s makes the UV atlas. auto: only when there is a spare core per worker "
        "(usable CPUs >= 2 x workers; a container's CPU quota counts).",
    )
    job_queue_size: int = Field(
        0, ge=0, description="Orders waiting for a worker; 0 means equal to `workers`."
    )
    job_timeout_s: float = Field(600.0, gt=0, description="Longest one order may take.")
    max_attempts: int = Field(
        3, ge=1, description="Attempts for transient failures before dead-lettering."
    )
    retry_backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each time.")
    worker_start_timeout_s: float = Field(
        900.0,
        gt=0,
        description="Longest a worker may take to start and load its models (large "
        "checkpoints from a slow disk take minutes).",
    )
    job_module: str = Field(
        "sculptsvc.jobs",
        description="Module with `init_worker(settings_json)` and `run_order_job(state, job)`.",
    )
    graceful_timeout_s: float = Field(
        660.0, ge=0, description="On SIGTERM, how long in-flight orders may finish."
    )

    # --- Models ------------------------------------------------------------------------
    stylizer: Literal["classic", "diffusion"] = Field(
        "classic", description="Stylizer backend; `diffusion` needs `diffusion_model_dir`."
    )
    reconstructor: Literal["classic", "triposr", "triposg"] = Field(
        "classic",
        description="Reconstructor backend; `triposr` needs `triposr_model_dir`, "
        "`triposg` needs `triposg_model_dir`.",
    )
    diffusion_model_dir: Path | None = Field(
        None, description="Local diffusers image-to-image pipeline folder."
    )
    triposr_model_dir: Path | None = Field(
        None, description="Local TripoSR folder (config.yaml + model.ckpt or .safetensors)."
    )
    triposg_model_dir: Path | None = Field(
        None, description="Local TripoSG release folder (model_index.json + its 5 parts)."
    )
    triposg_steps: int = Field(50, ge=1, le=200, description="TripoSG flow (Euler) steps.")
    triposg_guidance_scale: float = Field(
        7.0, ge=0.0, le=30.0, description="TripoSG classifier-free guidance (<= 1: off)."
    )
    triposg_latent_tokens: int = Field(
        2048, ge=16, le=8192, description="TripoSG latent tokens (the release uses 2048)."
    )
    triposg_grid_resolution: int = Field(
        256, ge=16, le=1024, description="TripoSG SDF grid cells per axis (64 x a power of 2)."
    )
    triposg_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="TripoSG precision; auto: bf16/fp16 on CUDA, fp32 on CPU."
    )
    triposg_chunk_points: int = Field(
        65_536, ge=1024, description="SDF query points per batch; bounds the grid's peak memory."
    )
    gpu_memory_limit_gb: float | None = Field(
        None,
        gt=0,
        description="Cap on each worker's CUDA memory (torch's per-process fraction); "
        "a stage that needs more fails instead of starving other processes.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Torch device.")
    diffusion_prompt: str | None = Field(
        None, description="Stylizer prompt; unset: the built-in glossy-silicone prompt."
    )
    diffusion_negative_prompt: str | None = Field(
        None, description="Negative prompt; unset: the built-in one."
    )
    diffusion_strength: float = Field(
        0.5, gt=0.0, le=1.0, description="How far from the picture (0 keeps it, 1 ignores it)."
    )
    diffusion_steps: int = Field(30, ge=1, le=200, description="Scheduler steps at strength 1.")
    diffusion_guidance_scale: float = Field(
        7.0, ge=0.0, le=30.0, description="Classifier-free guidance (0 for turbo/schnell)."
    )
    diffusion_resolution: int | None = Field(
        None, ge=64, le=2048, description="Square working size; unset: the model's native size."
    )
    diffusion_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: bf16/fp16 on CUDA, fp32 on CPU."
    )
    diffusion_variant: str | None = Field(None, description="Weight file variant, e.g. fp16.")
    diffusion_pipeline_class: str = Field(
        "AutoPipelineForImage2Image", description="diffusers class that loads the folder."
    )

    # --- Sculpture ---------------------------------------------------------------------
    target_faces: TargetFaces = TARGET_FACES_DEFAULT

    # --- Input limits ------------------------------------------------------------------
    image_fetch_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for an image fetched by URI."
    )
    max_image_bytes: int = Field(20 * 1024 * 1024, description="Largest accepted image file.")
    max_image_pixels: int = Field(
        40_000_000, description="Largest accepted width x height, checked before decoding."
    )
    dead_letter_inline_bytes: int = Field(
        256 * 1024,
        description="Inputs up to this size are kept inside their dead letter; larger ones "
        "go to the artifact store and the letter holds the claim check.",
    )
    allowed_uri_schemes: list[str] = Field(
        default_factory=lambda: ["file", "https"],
        description="Schemes an OrderPlaced image URI may use.",
    )
    allowed_uri_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts an https image URI may name (empty: none); every redirect it "
        "answers with must stay on these hosts too.",
    )
    allowed_file_roots: list[Path] = Field(
        default_factory=list, description="Directories a file:// image URI may point into."
    )

    # --- Factory station (`sculpt station`) ---------------------------------------------
    station_group_id: str = Field("sculpt-station", description="Consumer group of a station.")
    station_id: str | None = Field(
        None, description="Name of this station in its StationJob events; unset: host name."
    )
    station_jobs_dir: Path = Field(
        Path("var/station-jobs"), description="Where a station writes one folder per job."
    )
    station_slice: bool = Field(False, description="Slice both halves into G-code.")
    station_profile: str = Field(
        "generic-pla",
        description="Slicer profile: a name in sculptsvc/station/profiles or a .ini path.",
    )
    slicer_command: str = Field("prusa-slicer", description="PrusaSlicer executable.")
    slice_timeout_s: float = Field(600.0, gt=0, description="Longest one half may slice.")

    # --- Operations --------------------------------------------------------------------
    http_host: str = Field("127.0.0.1", description="Bind address of /health, /ready, /metrics.")
    http_port: int = Field(8080, description="Port of /health, /ready, /metrics.")
    log_level: str = Field("INFO", description="Log level.")
    log_format: Literal["json", "console"] = Field("json", description="Log renderer.")

    # --- Studio (`sculpt studio`: its own process, never inside `sculpt serve`) ---------
    studio_host: str = Field(
        "127.0.0.1", description="Bind address of the Studio (loopback: this machine only)."
    )
    studio_port: int = Field(8090, description="Port of the Studio's web pages.")
    studio_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Who may replay, reproduce and send orders: JSON `{"name": "token"}`; '
        "the name is logged with each action. Empty: those actions are off.",
    )
    studio_workers: int = Field(
        1, ge=1, description="Processes running design and reproduce jobs (the real pipeline)."
    )
    studio_max_orders: int = Field(
        5000, ge=1, description="Most recent orders the Studio keeps in memory."
    )
    studio_page_size: int = Field(200, ge=1, description="Orders listed per page.")
    studio_max_designs: int = Field(
        100, ge=1, description="Design sessions kept in memory (the oldest is dropped)."
    )
    studio_assets_dir: Path = Field(
        Path("tools/node_modules"),
        description="npm packages the Studio serves (model-viewer, three), installed by "
        "scripts/bootstrap; nothing is loaded from a CDN.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
