"""All configuration, read from the environment in one place and checked at start.

Every process (web, worker, serve, the CLI) builds one ``Settings`` with
``Settings.from_env(os.environ)``; tests pass plain dicts instead of monkeypatching.
An invalid value raises ``ConfigError`` with a message that says what to fix.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

VALIDATION_MODES = ("tolerant", "strict")
SECRET_FIELDS = frozenset({"webhook_tokens", "webhook_hmac_secrets", "admin_token"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# User hook time limits: a run is interrupted (SoftTimeLimitExceeded) after
# ENGAGEHOOK_HOOK_TIME_LIMIT seconds, its process killed this much later, and the run's claim
# (its lease) outlives that kill by a margin, so no second attempt can start while one runs.
HOOK_KILL_GRACE_SECONDS = 2
HOOK_LEASE_MARGIN_SECONDS = 3
DEFAULT_HOOK_TIME_LIMIT = 30


class ConfigError(ValueError):
    """An environment variable has a value engagehook cannot run with."""


def _whole_number(environ: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        bound = "greater than 0" if minimum == 1 else f"{minimum} or more"
        raise ConfigError(f"{name} must be {bound}, got {value}")
    return value


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    return _whole_number(environ, name, default, minimum=1)


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    return _whole_number(environ, name, default, minimum=0)


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw}")
    return value


def _port(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name} must be a TCP port between 1 and 65535, got {raw!r}")
    return int(raw)


def _basic_auth(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    pairs = tuple(p.strip() for p in environ.get(name, "").split(",") if p.strip())
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"{name} must be user:password pairs separated by commas")
    return pairs


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one engagehook process."""

    redis_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path("var")
    webhook_hmac_secrets: tuple[str, ...] = ()
    admin_token: str | None = None
    visibility_timeout: int = 300
    max_body_bytes: int = 1_048_576
    # Bytes the ingest spool may hold while the broker is down (ENGAGEHOOK_SPOOL_MAX_BYTES).
    spool_max_bytes: int = 1_073_741_824
    validation_mode: str = "tolerant"
    hook_modules: tuple[str, ...] = ()
    log_level: str = "INFO"
    worker_metrics_port: int | None = None
    flower_basic_auth: tuple[str, ...] = ()
    # A failing user hook is retried this often, waiting about base * 2**n seconds (jittered).
    hook_max_retries: int = 5
    hook_retry_backoff: float = 1.0
    # Retention (ENGAGEHOOK_RETENTION_DAYS): finished event records older than this many days
    # are pruned by the workers on a schedule; 0 is off. Unset: 30 in embedded mode (nothing
    # else would ever prune it), off with Redis (production schedules it, or sets this).
    retention_days: int = 0
    # Start-up safety (see _start_up_safety): where the Prometheus multiprocess files live.
    metrics_dir: Path | None = None
    # Pexip Engage sender: URL tokens (several, for rotation) and the configuration allowlist.
    webhook_tokens: tuple[str, ...] = ()
    webhook_configuration_ids: tuple[str, ...] = ()
    # User hook time limit (ENGAGEHOOK_HOOK_TIME_LIMIT), in seconds; see hook_lease_seconds.
    hook_time_limit: int = DEFAULT_HOOK_TIME_LIMIT

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the variables documented in the README's configuration table."""
        mode = environ.get("VALIDATION_MODE", "tolerant").strip().lower() or "tolerant"
        if mode not in VALIDATION_MODES:
            raise ConfigError(f"VALIDATION_MODE must be one of {VALIDATION_MODES}, got {mode!r}")
        redis_url = _optional(environ, "REDIS_URL")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url!r}"
            )
        bounds = _start_up_safety(environ, redis_url)
        secrets = tuple(
            s.strip() for s in environ.get("WEBHOOK_HMAC_SECRET", "").split(",") if s.strip()
        )
        hook_modules = tuple(
            m.strip() for m in environ.get("ENGAGEHOOK_HOOK_MODULES", "").split(",") if m.strip()
        )
        return cls(
            redis_url=redis_url,
            database_url=_optional(environ, "DATABASE_URL"),
            data_dir=Path(environ.get("ENGAGEHOOK_DATA_DIR", "").strip() or "var"),
            webhook_hmac_secrets=secrets,
            admin_token=_optional(environ, "ADMIN_TOKEN"),
            visibility_timeout=_positive_int(environ, "VISIBILITY_TIMEOUT", 300),
            max_body_bytes=_positive_int(environ, "MAX_BODY_BYTES", 1_048_576),
            spool_max_bytes=_positive_int(environ, "ENGAGEHOOK_SPOOL_MAX_BYTES", 1_073_741_824),
            validation_mode=mode,
            hook_modules=hook_modules,
            log_level=_log_level(environ),
            worker_metrics_port=_port(environ, "WORKER_METRICS_PORT"),
            flower_basic_auth=_basic_auth(environ, "FLOWER_BASIC_AUTH"),
            hook_max_retries=_count(environ, "ENGAGEHOOK_HOOK_MAX_RETRIES", 5),
            hook_retry_backoff=_seconds(environ, "ENGAGEHOOK_HOOK_RETRY_BACKOFF", 1.0),
            retention_days=_retention_days(environ, embedded=redis_url is None),
            **bounds,
            # Pexip Engage sender
            webhook_tokens=_tokens(environ, "WEBHOOK_TOKEN"),
            webhook_configuration_ids=_comma_list(environ, "WEBHOOK_CONFIGURATION_IDS"),
            hook_time_limit=_hook_time_limit(environ),
        )

    # -- user hook time limits -------------------------------------------------------------

    @property
    def hook_hard_time_limit(self) -> int:
        """Seconds after which a hook's process is killed (the soft limit did not stop it)."""
        return self.hook_time_limit + HOOK_KILL_GRACE_SECONDS

    @property
    def hook_lease_seconds(self) -> int:
        """How long one attempt holds its hook run: longer than any attempt can live."""
        return self.hook_hard_time_limit + HOOK_LEASE_MARGIN_SECONDS

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: broker and store live in files under data_dir."""
        return self.redis_url is None

    @property
    def store_url(self) -> str:
        """SQLAlchemy URL of the appointment store."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'engagehook.sqlite3').resolve()}"

    @property
    def broker_url(self) -> str:
        """Celery broker: Redis when configured, else a SQLite file for the embedded transport."""
        if self.redis_url:
            return self.redis_url
        return f"sqlite:///{(self.data_dir / 'broker.sqlite3').resolve()}"

    @property
    def retry_wait_limit(self) -> float:
        """The longest any retry (event or hook) may wait: half of VISIBILITY_TIMEOUT.

        A retried task is held unacknowledged by a worker until its countdown ends; held longer
        than VISIBILITY_TIMEOUT, Redis delivers it again and each copy retries on its own. The
        other half is left for the attempt itself.
        """
        return self.visibility_timeout / 2

    def metrics_base(self) -> Path:
        """Where the roles keep their Prometheus multiprocess files: never beside the spool.

        The files are memory-mapped: on a full filesystem a write to them kills the process
        with SIGBUS, so they live on a RAM-backed /dev/shm when there is one.
        """
        if self.metrics_dir is not None:
            return self.metrics_dir
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
            return shm / "engagehook-metrics"
        return Path(tempfile.gettempdir()) / "engagehook-metrics"

    def require_shared_store(self) -> None:
        """Refuse REDIS_URL without DATABASE_URL for the roles that read or write the store.

        With Redis several hosts share one queue; the default SQLite file is local to each host,
        so every worker host would keep a store of its own and apply the same event again.
        """
        if self.redis_url and not self.database_url:
            raise ConfigError(
                "REDIS_URL is set but DATABASE_URL is not: every host would keep its own SQLite "
                "store. Set DATABASE_URL to the shared store (postgresql+psycopg://user:password"
                "@host/db), or to an explicit sqlite:/// file if a single host is intended"
            )

    @property
    def spool_dir(self) -> Path:
        """Where ingest keeps payloads durably while the broker cannot take them."""
        return self.data_dir / "spool"

    def ensure_dirs(self) -> None:
        """Create the data directory tree the embedded mode and the spool write into."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def masked(self) -> dict[str, object]:
        """The configuration as plain values with every secret replaced by '***'."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "flower_basic_auth":
                value = [pair.partition(":")[0] + ":***" for pair in value]
            elif f.name in SECRET_FIELDS and value:
                value = "***" if isinstance(value, str) else ["***"] * len(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["embedded"] = self.embedded
        out["broker_url"] = _mask_url(self.broker_url)
        out["store_url"] = _mask_url(self.store_url)
        out["redis_url"] = _mask_url(self.redis_url) if self.redis_url else None
        out["database_url"] = _mask_url(self.database_url) if self.database_url else None
        return out


# -- retention ---------------------------------------------------------------------------------

EMBEDDED_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 36_500


def _retention_days(environ: Mapping[str, str], *, embedded: bool) -> int:
    default = EMBEDDED_RETENTION_DAYS if embedded else 0
    days = _count(environ, "ENGAGEHOOK_RETENTION_DAYS", default)
    if days > MAX_RETENTION_DAYS:
        raise ConfigError(
            f"ENGAGEHOOK_RETENTION_DAYS must be at most {MAX_RETENTION_DAYS} days; "
            f"set 0 to keep records forever, got {days}"
        )
    return days


# -- start-up safety: configurations that can lose or double data are refused (issue 14) ------

MAX_VISIBILITY_TIMEOUT = 86_400  # a day: longer only hides dead workers' messages for longer
# Below this a store attempt (PostgreSQL's 5 s connect timeout) no longer fits beside a retry
# wait capped at half of it, and a message would be delivered again while still being retried.
MIN_VISIBILITY_TIMEOUT = 10
MAX_BODY_BYTES_LIMIT = 64 * 1_048_576
MAX_SPOOL_BYTES_LIMIT = 1 << 40  # 1 TiB
MAX_HOOK_RETRIES = 100
MAX_HOOK_RETRY_BACKOFF = 3_600.0
STORE_BACKENDS = ("sqlite", "postgresql")


class _StartUpFields(TypedDict):
    """The Settings fields the start-up safety block reads."""

    metrics_dir: Path | None


def _start_up_safety(environ: Mapping[str, str], redis_url: str | None) -> _StartUpFields:
    """Check URLs and bounds before anything starts; returns the block's own Settings fields."""
    if redis_url:
        _check_redis_url(redis_url)
    database_url = _optional(environ, "DATABASE_URL")
    if database_url:
        _check_database_url(database_url)
    _bounded(environ, "VISIBILITY_TIMEOUT", MIN_VISIBILITY_TIMEOUT, MAX_VISIBILITY_TIMEOUT)
    _bounded(environ, "MAX_BODY_BYTES", 1, MAX_BODY_BYTES_LIMIT)
    _bounded(environ, "ENGAGEHOOK_SPOOL_MAX_BYTES", 1_048_576, MAX_SPOOL_BYTES_LIMIT)
    _bounded(environ, "ENGAGEHOOK_HOOK_MAX_RETRIES", 0, MAX_HOOK_RETRIES)
    _bounded(environ, "ENGAGEHOOK_HOOK_RETRY_BACKOFF", 0, MAX_HOOK_RETRY_BACKOFF)
    metrics_dir = _optional(environ, "ENGAGEHOOK_METRICS_DIR")
    return {"metrics_dir": Path(metrics_dir) if metrics_dir else None}


def _bounded(environ: Mapping[str, str], name: str, low: float, high: float) -> None:
    """Refuse a number outside [low, high]; a value that is not a number is left to its parser."""
    raw = environ.get(name, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return
    if value > 0 and not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw}")


def _check_redis_url(url: str) -> None:
    from redis.connection import parse_url

    try:
        parts = parse_url(url)
    except ValueError as exc:
        raise ConfigError(
            f"REDIS_URL is not a usable Redis URL ({exc}); set it like redis://host:6379/0"
        ) from None
    path = urlsplit(url).path.strip("/")
    if url.startswith(("redis://", "rediss://")) and path and "db" not in parts:
        raise ConfigError(
            f"REDIS_URL must end with a database number (redis://host:6379/0), got /{path}"
        )


def _check_database_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    from sqlalchemy.exc import NoSuchModuleError

    hint = "set it like postgresql+psycopg://user:password@host:5432/db or sqlite:////path/file"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a SQLAlchemy URL; {hint}") from None
    if parsed.drivername in ("postgres", "postgres+psycopg"):
        raise ConfigError(
            "DATABASE_URL starts with postgres://, which SQLAlchemy does not know: "
            "write postgresql+psycopg:// instead"
        )
    try:
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"DATABASE_URL names a database driver that is not installed "
            f"({parsed.drivername}: {exc.__class__.__name__}); {hint}"
        ) from None
    if parsed.get_backend_name() not in STORE_BACKENDS:
        raise ConfigError(
            f"DATABASE_URL must be a SQLite or PostgreSQL URL, got {parsed.get_backend_name()}"
        )
    if parsed.get_backend_name() == "postgresql" and not parsed.database:
        raise ConfigError(f"DATABASE_URL names no database; {hint}")


# -- Pexip Engage sender: WEBHOOK_TOKEN, WEBHOOK_CONFIGURATION_IDS ------------------------------

# A token rides in the webhook URL (?token=...): a character that a URL would re-encode, or
# that ends a query parameter, would make the URL Pexip Engage posts to differ from the token.
_URL_SAFE_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _comma_list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in environ.get(name, "").split(",") if item.strip())


def _tokens(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """The accepted webhook tokens; several, separated by commas, while one is being rotated."""
    tokens = _comma_list(environ, name)
    for position, token in enumerate(tokens, start=1):
        # The message names the position, never the token: configuration errors get logged.
        if not set(token) <= _URL_SAFE_TOKEN:
            raise ConfigError(
                f"{name}: token {position} has characters that do not survive in a URL; "
                "use letters, digits and - . _ ~ only "
                "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    return tokens


def _hook_time_limit(environ: Mapping[str, str]) -> int:
    """A hook's time limit must end its attempt, lease included, before Redis redelivers it."""
    visibility = _positive_int(environ, "VISIBILITY_TIMEOUT", 300)
    longest = max(1, visibility - HOOK_KILL_GRACE_SECONDS - HOOK_LEASE_MARGIN_SECONDS - 1)
    if not environ.get("ENGAGEHOOK_HOOK_TIME_LIMIT", "").strip():
        return min(DEFAULT_HOOK_TIME_LIMIT, longest)
    limit = _positive_int(environ, "ENGAGEHOOK_HOOK_TIME_LIMIT", DEFAULT_HOOK_TIME_LIMIT)
    if limit > longest:
        raise ConfigError(
            f"ENGAGEHOOK_HOOK_TIME_LIMIT={limit} would let a running hook's message be delivered "
            f"again after VISIBILITY_TIMEOUT={visibility} s: set it to at most {longest} "
            "or raise VISIBILITY_TIMEOUT"
        )
    return limit


def _log_level(environ: Mapping[str, str]) -> str:
    level = environ.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {LOG_LEVELS}, got {level!r}")
    return level


def _mask_url(url: str) -> str:
    """Hide a password embedded in a URL."""
    from urllib.parse import urlsplit
    from urllib.parse import urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
