"""All configuration, read from the environment in one place and checked at start.

Every process (web, worker, serve, the CLI) builds one ``Settings`` with
``Settings.from_env(os.environ)``; tests pass plain dicts instead of monkeypatching.
An invalid value raises ``ConfigError`` with a message that says what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from pathlib import Path

VALIDATION_MODES = ("tolerant", "strict")
SECRET_FIELDS = frozenset({"webhook_token", "webhook_hmac_secrets", "admin_token"})
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
    webhook_token: str | None = None
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
            webhook_token=_optional(environ, "WEBHOOK_TOKEN"),
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
