"""One typed settings object, read from ``HOMESHOTS_*`` environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SOURCES: tuple[str, ...] = ("mls", "maricopa", "zillow", "redfin")
"""Source names known to this build, in the order their extractors run by default."""


def _legacy(default: Any, name: str, **constraints: Any) -> Any:
    """A ``mls_*`` field that also reads the ``HOMESHOTS_RESO_<name>`` variable it had before."""
    return Field(
        default,
        validation_alias=AliasChoices(f"HOMESHOTS_MLS_{name}", f"HOMESHOTS_RESO_{name}", f"mls_{name.lower()}"),
        **constraints,
    )


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


@dataclass(frozen=True)
class SourcePolicy:
    """Per-source network settings, so an operator can route Zillow or Redfin through a proxy."""

    source: str
    rate: float
    timeout: float
    max_retries: int
    user_agent: str
    proxy_url: str | None
    max_response_bytes: int
    base_urls: tuple[str, ...]
    """The operator-configured URLs of the source's API: trusted origins for the URL guard."""


class Settings(BaseSettings):
    """Everything an operator can set. Secrets are ``SecretStr`` so they never reach a log line."""

    model_config = SettingsConfigDict(env_prefix="HOMESHOTS_", extra="ignore", populate_by_name=True)

    # --- infrastructure -------------------------------------------------------------------
    redis_url: str | None = None
    """State/manifest/hash index Redis. Unset: ``homeshots backfill`` starts an embedded one."""
    redis_cluster: bool = False
    """``redis_url`` names one node of a Redis Cluster: state, manifest and index spread over its nodes."""
    broker_url: str | None = None
    """Celery broker (plain Redis or RabbitMQ, never a Redis Cluster); defaults to ``redis_url`` unless that
    is a cluster."""
    result_backend_url: str | None = None
    """Celery's chord results (a plain Redis). Default: the broker when it is a Redis, else the next database
    of ``redis_url``. They expire after ``result_expires_hours``; never kept on a Redis Cluster."""
    store_url: str = "file://./homeshots-data"
    store_fsync: bool = True
    """Local-folder store only (S3 has no fsync): flush each file to the disk before linking it into place,
    so that after a power loss every file present is complete (``storage/local.py`` says what is at stake
    without it). A killed process loses nothing either way; off saves ~2.4 ms of waiting per file."""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    embedded_dir: Path = Path("./homeshots-data")
    """Where the embedded Redis keeps its AOF when no ``redis_url`` is set."""

    # --- run shape --------------------------------------------------------------------------
    sources: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(SOURCES))
    window_size: int = Field(1000, ge=1, le=100_000)
    windows_in_flight: int = Field(2, ge=1, le=100)
    worker_concurrency: int | None = None
    embedded_pool: Literal["threads", "prefork"] = "threads"
    """How ``homeshots backfill`` without ``redis_url`` runs its local workers: ``threads``, one worker
    process per core (``worker_concurrency``) running ``embedded_task_threads`` tasks that share its image
    lane, so the lane is fed across task boundaries; or ``prefork``, one worker with ``worker_concurrency``
    children, which enforces the hard time limit but idles at every task boundary."""
    embedded_task_threads: int = Field(2, ge=1, le=16)
    """Tasks one embedded ``threads`` worker process runs at once (they share one image lane)."""
    task_soft_time_limit: int = Field(540, ge=10)
    task_time_limit: int = Field(600, ge=15)
    window_callback_max_waits: int = Field(120, ge=1)
    result_expires_hours: float = Field(6.0, gt=0, le=24 * 30)
    """Hours Celery keeps a task's result (a window's chord needs them only until its callback runs)."""
    worker_max_memory_per_child_mb: int = Field(1536, ge=0)
    """A worker child that grew past this many MiB (resident) is replaced after its task; 0: never. Freed
    image buffers stay in the heap for speed (``keep_image_buffers``), so this is what bounds it."""
    visibility_timeout: int | None = Field(None, ge=10)
    """Seconds before the broker redelivers an unacknowledged task; default 2 x hard limit + 60."""
    run_retention_days: float = Field(7.0, ge=0)
    """Days a finished run's manifest and failures stay in Redis (they are in the store for good)."""
    nightly_file: Path | None = None
    """Properties file of the nightly run that ``celery -A celery_app beat`` submits (no CronJob needed)."""
    nightly_at: str = Field("01:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    """When (HH:MM, UTC) the beat schedule submits the night."""
    night_hours: float = Field(8.0, gt=0, le=24)
    """The length of a night (``homeshots nightly --hours``): each source's request budget is its rate times this."""
    lane_chunk_seconds: float = Field(60.0, gt=0)
    """Seconds of a source's requests (at its rate) in one chunk of its lane: a slow source gets small chunks,
    so it never has more than ``windows_in_flight`` chunks (a few minutes of its tokens) queued."""
    token_wait_max: float = Field(2.0, ge=0)
    """Longest a task waits for a source's token in its worker slot; a longer wait gives the slot back (a
    retry with a countdown, the tokens reserved for it)."""
    heartbeat_seconds: float = Field(10.0, gt=0)
    """How often a worker says it is alive; one silent for 3x this is lost and its tasks are sent again."""
    reconcile_seconds: float = Field(30.0, gt=0)
    """How often the workers look for lost work (one of them at a time, under a Redis lock)."""
    stall_seconds: float = Field(120, gt=0)
    """``--wait`` runs the reconciler (as ``homeshots resume``) after this long without progress."""

    # --- images -------------------------------------------------------------------------------
    max_dimension: int = Field(1024, ge=16, le=8192)
    output_format: Literal["PNG", "JPEG", "WEBP"] = "PNG"
    png_compress_level: int = Field(1, ge=0, le=9)
    png_strategy: Literal["default", "rle"] = "rle"
    """zlib strategy of Pillow's PNG encoder (``png_encoder=pillow``). ``rle`` (runs only; any level 1-9
    encodes alike) is ~10% faster and ~5% smaller than ``default`` at level 1 on photos, same pixels
    (``benchmarks/RESULTS.md``); ``default`` with a higher level gives the smallest files, at ~4x the
    encode time for level 6."""
    png_encoder: Literal["isal", "pillow"] = "isal"
    """Who writes processed PNGs. ``isal`` (``imaging/png.py``): one filter for every row and ISA-L's
    deflate at level ``min(png_compress_level, 3)``, ~5x faster than Pillow's encoder, files ~8% larger.
    ``pillow``: Pillow's zlib encoder (``png_compress_level``, ``png_strategy``), for the smallest files.
    The pixels are the same either way, so the pixel sha256 and the processed key do not change."""
    jpeg_quality: int = Field(90, ge=1, le=100)
    dedup_threshold: int = Field(8, ge=0, le=32)
    dedup_dhash_threshold: int = Field(12, ge=0, le=64)
    """A pHash match is merged only if the dHash distance is within this too (guards false merges)."""
    max_image_pixels: int = Field(100_000_000, ge=1)
    max_decoded_bytes: int = Field(96 << 20, ge=1 << 20)
    """Largest decoded image accepted (4 bytes a pixel; JPEGs count at their reduced draft size, so only
    non-JPEG originals over ~24 MP are refused): what keeps one worker's memory bounded on a pixel flood."""
    max_buffered_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    """Image bodies one worker process holds at most while they wait for the image lane (plus one
    image over it): downloads wait for room, so memory does not grow with the size of a listing."""
    image_threads: int = Field(1, ge=1, le=64)
    """Images decoded and encoded at once per worker process (whatever its tasks or threads): one
    core of image work each, so Celery's ``--concurrency`` maps to cores; it also bounds memory
    (a 100 MP photo is ~300 MB decoded)."""

    # --- downloads ------------------------------------------------------------------------------
    download_concurrency: int = Field(8, ge=1, le=256)
    download_timeout: float = Field(30.0, gt=0)
    """Seconds per connect and per read of one image download."""
    download_deadline: float = Field(60.0, gt=0)
    """Seconds for one image download as a whole (connect, headers, body, redirects): slow senders end here."""
    download_retries: int = Field(2, ge=0, le=10)
    """Retries of an image download that timed out, lost its connection or got a 5xx/429."""
    request_deadline: float = Field(60.0, gt=0)
    """Seconds for one source API request as a whole, like ``download_deadline``."""
    connect_timeout: float = Field(10.0, gt=0)
    max_image_bytes: int = Field(40 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(5, ge=0, le=20)
    allow_private_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts or CIDRs that source-supplied URLs may point at although private/loopback."""
    user_agent: str = "homeshots/0.1 (+https://github.com/homeshots)"

    # --- Phoenix MLS over the RESO Web API (source ``mls``) ----------------------------------------
    # The HOMESHOTS_RESO_* names of earlier releases are still read (``_legacy``).
    mls_base_url: str = _legacy("https://api.mls.example/reso/odata", "BASE_URL")
    mls_token_url: str = _legacy("https://api.mls.example/oauth2/token", "TOKEN_URL")
    mls_client_id: str = _legacy("", "CLIENT_ID")
    mls_client_secret: SecretStr = _legacy(SecretStr(""), "CLIENT_SECRET")
    mls_scope: str | None = _legacy(None, "SCOPE")
    mls_timeout: float = _legacy(20.0, "TIMEOUT", gt=0)
    mls_max_retries: int = _legacy(4, "MAX_RETRIES", ge=0, le=10)
    mls_max_pages: int = _legacy(20, "MAX_PAGES", ge=1)
    mls_max_response_bytes: int = _legacy(20 * 1024 * 1024, "MAX_RESPONSE_BYTES", ge=1024)

    # --- Maricopa County Assessor ------------------------------------------------------------------
    maricopa_base_url: str = "https://mcassessor.maricopa.gov"
    maricopa_token: SecretStr = SecretStr("")

    # --- Zillow and Redfin (home pages / stingray JSON) ---------------------------------------------
    zillow_base_url: str = "https://www.zillow.com"
    redfin_base_url: str = "https://www.redfin.com"

    # --- politeness and routing, per source ----------------------------------------------------------
    mls_rate: float = Field(5.0, gt=0)
    maricopa_rate: float = Field(2.0, gt=0)
    zillow_rate: float = Field(0.5, gt=0)
    redfin_rate: float = Field(1.0, gt=0)
    """Requests per second to each source's API, shared by every worker of the cluster."""
    mls_proxy_url: str | None = None
    maricopa_proxy_url: str | None = None
    zillow_proxy_url: str | None = None
    redfin_proxy_url: str | None = None
    mls_user_agent: str | None = None
    maricopa_user_agent: str | None = None
    zillow_user_agent: str | None = None
    redfin_user_agent: str | None = None
    maricopa_timeout: float = Field(20.0, gt=0)
    zillow_timeout: float = Field(20.0, gt=0)
    redfin_timeout: float = Field(20.0, gt=0)
    source_max_retries: int = Field(3, ge=0, le=10)
    """Retries of a source's API call (timeouts, 5xx, 429) before the property fails for that source."""
    page_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_photos_per_listing: int = Field(500, ge=1, le=100_000)
    """Photos taken from one listing of one source; the rest are recorded as a ``too_many_photos`` outcome."""
    """Largest API response or HTML page accepted from a source."""

    # --- monitoring -------------------------------------------------------------------------------
    flower_basic_auth: SecretStr = SecretStr("")
    """``user:password[,user2:password2]`` for ``homeshots flower``; it refuses to start without auth."""
    flower_auth: str | None = None
    """Flower's OAuth e-mail regex (with the HOMESHOTS_FLOWER_OAUTH2_* settings) instead of basic auth."""
    flower_auth_provider: str = "flower.views.auth.GithubLoginHandler"
    flower_oauth2_key: str | None = None
    flower_oauth2_secret: SecretStr = SecretStr("")
    flower_oauth2_redirect_uri: str | None = None

    @field_validator("sources", "allow_private_hosts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; known: {list(SOURCES)}")
        return value

    def source_problems(self, sources: list[str]) -> list[str]:
        """What is missing for ``sources`` to work, so a run fails before it starts, not per property."""
        problems = []
        if "mls" in sources and not self.mls_client_id:
            problems.append("source mls needs HOMESHOTS_MLS_CLIENT_ID and HOMESHOTS_MLS_CLIENT_SECRET")
        if "maricopa" in sources and not self.maricopa_token.get_secret_value():
            problems.append("source maricopa needs HOMESHOTS_MARICOPA_TOKEN")
        return problems

    def policy(self, source: str) -> SourcePolicy:
        """How to talk to ``source``: its shared rate, timeout, retries, User-Agent and proxy."""
        timeout = self.mls_timeout if source == "mls" else getattr(self, f"{source}_timeout")
        retries = self.mls_max_retries if source == "mls" else self.source_max_retries
        return SourcePolicy(
            source=source,
            rate=getattr(self, f"{source}_rate"),
            timeout=timeout,
            max_retries=retries,
            user_agent=getattr(self, f"{source}_user_agent") or self.user_agent,
            proxy_url=getattr(self, f"{source}_proxy_url"),
            max_response_bytes=self.mls_max_response_bytes if source == "mls" else self.page_max_bytes,
            base_urls=(self.mls_base_url, self.mls_token_url)
            if source == "mls"
            else (getattr(self, f"{source}_base_url"),),
        )

    @model_validator(mode="after")
    def _limits_fit(self) -> Settings:
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("HOMESHOTS_TASK_SOFT_TIME_LIMIT must be below HOMESHOTS_TASK_TIME_LIMIT")
        if self.redis_cluster and not self.redis_url:
            raise ValueError("HOMESHOTS_REDIS_CLUSTER=true needs HOMESHOTS_REDIS_URL (any node of the cluster)")
        if self.redis_cluster and not self.broker_url:
            raise ValueError(
                "HOMESHOTS_REDIS_CLUSTER=true needs HOMESHOTS_BROKER_URL: Celery's broker cannot live on a Redis "
                "Cluster (use a plain Redis or RabbitMQ)"
            )
        if self.redis_cluster and self.effective_result_backend_url is None:
            raise ValueError(
                "HOMESHOTS_REDIS_CLUSTER=true with a RabbitMQ broker needs HOMESHOTS_RESULT_BACKEND_URL (a plain "
                "Redis): chords keep their results there, and never on the cluster"
            )
        if self.visibility_timeout is not None and self.visibility_timeout <= self.task_time_limit:
            raise ValueError(
                "HOMESHOTS_VISIBILITY_TIMEOUT must exceed HOMESHOTS_TASK_TIME_LIMIT, or a slow "
                "task is handed to a second worker while the first still runs it"
            )
        return self

    @property
    def property_deadline(self) -> float:
        """Seconds one property may take; pending images then fail as ``deadline`` and what was collected
        is recorded, well before the task's soft time limit."""
        return max(5.0, self.task_soft_time_limit - 45.0)

    @property
    def reservation_horizon(self) -> float:
        """How far ahead a lane task may reserve its source's tokens (its chunks in flight, and one more)."""
        return self.lane_chunk_seconds * (self.windows_in_flight + 1)

    @property
    def lost_after(self) -> float:
        """Seconds without progress after which a lane's unstarted tasks count as lost and are sent again."""
        return max(self.stall_seconds, 3 * self.heartbeat_seconds)

    @property
    def effective_visibility_timeout(self) -> int:
        return self.visibility_timeout or self.task_time_limit * 2 + 60

    @property
    def effective_broker_url(self) -> str | None:
        return self.broker_url or (None if self.redis_cluster else self.redis_url)

    @property
    def effective_result_backend_url(self) -> str | None:
        """Where chord results go: the setting, else the broker when it is a Redis (never the state cluster)."""
        if self.result_backend_url:
            return self.result_backend_url
        broker = self.effective_broker_url or ""
        if broker.startswith(("redis://", "rediss://")):
            return _next_database(broker) if broker == self.redis_url else broker
        if self.redis_url and not self.redis_cluster:
            return _next_database(self.redis_url)
        return None


def _next_database(url: str) -> str:
    """The same Redis, the next database number: results kept apart from the state's keys (``redis-cli -n``)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    database = int(path) if path.isdigit() else 0
    return urlunsplit(parts._replace(path=f"/{database + 1}"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process (cached: the environment is read once)."""
    return Settings()
