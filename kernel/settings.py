"""One settings object, read from REGFLOW_* environment variables and, below them, a
`.env` file in the working directory.

Built by a cached function, never at import time, so tests can point it elsewhere
and call `get_settings.cache_clear()`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.errors import InvalidInput

# The repository root: plans, authorities and templates ship beside the code.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOME = PROJECT_ROOT / ".regflow"
# Where `make run` serves Prefect's API: the address used when neither the environment
# nor Prefect's own configuration (.env, prefect.toml, pyproject.toml, profile) names one.
DEFAULT_PREFECT_API = "http://127.0.0.1:4200/api"


class Settings(BaseSettings):
    # The environment wins over .env; keys of other tools there (PREFECT_*) are left alone.
    model_config = SettingsConfigDict(
        env_prefix="REGFLOW_", env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    home: Path = DEFAULT_HOME
    database_url: str | None = None
    plans_dir: Path = PROJECT_ROOT / "data" / "plans"
    authorities_file: Path = PROJECT_ROOT / "data" / "authorities.yaml"
    templates_dir: Path = PROJECT_ROOT / "templates"
    rules_file: Path = PROJECT_ROOT / "data" / "rules" / "statutory.yaml"
    # Holidays for years the calendar library does not know yet (see rules/calendar.py).
    calendar_override: Path = PROJECT_ROOT / "data" / "calendar-override.yaml"
    apprise_config: Path | None = None
    # Who may act (rules/people.py), and whom the CLI acts as: "declared" takes
    # --by, then $REGFLOW_USER, then the OS login; "login" (production) only the OS
    # login, the one identity the machine has checked.
    people_file: Path = PROJECT_ROOT / "data" / "people.yaml"
    rosters_dir: Path = PROJECT_ROOT / "data" / "rosters"  # duty rosters loaded at start-up (*.csv)
    identity: Literal["declared", "login"] = "declared"
    timezone: str = "Asia/Shanghai"
    deployment: str = "emergency-response/emergency-response"
    case_deployment: str = "enforcement-case/enforcement-case"
    complaint_deployment: str = "complaint-handling/complaint-handling"
    lookback_deployment: str = "lookback-review/lookback-review"
    campaign_deployment: str = "spot-check-campaign/spot-check-campaign"
    sample_deployment: str = "spot-check-sample/spot-check-sample"
    risk_deployment: str = "risk-item/risk-item"
    recall_deployment: str = "recall/recall"
    publication_deployment: str = "penalty-publication/penalty-publication"
    listing_deployment: str = "serious-listing/serious-listing"
    referral_deployment: str = "credit-referral/credit-referral"
    expiry_deployment: str = "credit-expiry/credit-expiry"
    # Credit supervision's conditions and the partner departments (rules/credit.py).
    credit_rules: Path = PROJECT_ROOT / "data" / "rules" / "credit.yaml"
    partners_file: Path = PROJECT_ROOT / "data" / "partners.yaml"
    # The flags of the monthly supervision report (rules/stats.py).
    supervision_rules: Path = PROJECT_ROOT / "data" / "rules" / "supervision.yaml"
    # How signals are grouped and graded, and each grade's limits (rules/risk.py).
    risk_thresholds: Path = PROJECT_ROOT / "data" / "risk" / "thresholds.yaml"
    # How long a human-step command waits for the flow run to reach its suspension.
    resume_wait_seconds: float = 60.0
    # Outbox delivery: the watcher's poll interval and the retry backoff (seconds).
    outbox_poll_seconds: float = 1.0
    outbox_claim_seconds: float = 120.0
    outbox_backoff_base: float = 5.0
    outbox_backoff_cap: float = 600.0
    # How long `incident trigger` waits to send the dispatch order itself before
    # leaving it to the watcher (a channel that hangs must not hang the duty officer).
    trigger_delivery_seconds: float = 10.0
    # Retries of a busy Prefect (HTTP 503, 429) when starting a run. Prefect's own five
    # back off for two minutes, holding the duty officer that long, while the record
    # and its dispatch order are safe already and the watcher starts a missing run
    # (with the same idempotency key: never twice): give up after one retry.
    run_start_retries: int = 1
    # How long a command that records a subject waits for Prefect to create its run
    # before saying "the run follows": the record is the commitment, and the watcher
    # creates a run still missing within a second or two (same idempotency key).
    # Idle, a run is created in ~20 ms; in a burst, Prefect's server answers in seconds.
    run_start_wait_seconds: float = 0.3
    # How long after a trigger the watcher creates a run still missing (the trigger's
    # own try first; were both to try, the idempotency key still makes one run).
    run_start_grace_seconds: float = 2.0
    # Flow runs of enforcement work (the `default` work queue) executing at once, across
    # workers; the rest of the workers' slots stay free for incidents (tasks/automations.py).
    enforcement_run_slots: int = 2
    # Backups (`regflow backup`, the daily `regflow-backup` deployment): where they go,
    # how many are kept; the audit chain's anchor file lives beside them.
    backup_dir: Path | None = None
    backup_keep: int = Field(default=14, ge=1)
    audit_anchor: Path | None = None
    # Log files of `regflow up` (regflow/logs.py): their format, and rotation by size.
    log_format: Literal["text", "json"] = "text"
    log_max_bytes: int = 50 * 1024 * 1024
    log_backups: int = 5
    # Dead-run detection (tasks/runs.py): a flow-run process beats every 5 s.
    run_silent_seconds: float = 30.0
    run_start_seconds: float = 90.0

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'regflow.db'}"

    @property
    def backup_path(self) -> Path:
        return self.backup_dir or self.home / "backups"

    @property
    def audit_anchor_path(self) -> Path:
        """Append-only, beside the backups and outside the database it vouches for."""
        return self.audit_anchor or self.backup_path / "audit-anchor.log"

    @property
    def apprise_config_path(self) -> Path:
        return self.apprise_config or self.home / "apprise.yml"

    @property
    def ui_url(self) -> str:
        """The Prefect UI's base address, from Prefect's own settings."""
        explicit = os.environ.get("PREFECT_UI_URL")
        if explicit:
            return explicit.rstrip("/")
        api = os.environ.get("PREFECT_API_URL") or DEFAULT_PREFECT_API
        api = api.rstrip("/")
        return api[: -len("/api")] if api.endswith("/api") else api

    def flow_run_url(self, flow_run_id: object) -> str:
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"


def prefect_auth_headers() -> dict[str, str]:
    """The Basic auth header Prefect's own client sends when PREFECT_API_AUTH_STRING is
    set (production), for our few direct HTTP calls (health checks)."""
    import base64

    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}


def export_dotenv(path: str = ".env") -> None:
    """REGFLOW_* values of a .env file in the working directory, put into the environment
    where it does not set them already, so the processes a command starts (the platform's
    workers and watchers) see what this one sees."""
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if key.startswith("REGFLOW_") and value is not None:
            os.environ.setdefault(key, value)


def use_prefect_api_url() -> str:
    """Prefect's API address as Prefect's own settings resolve it (environment, .env,
    prefect.toml, pyproject.toml, the active profile), or `make run`'s where none names
    one, never a throwaway server of the client's own. Put in the environment, so our
    own calls and the processes we start agree with Prefect's client."""
    url = os.environ.get("PREFECT_API_URL")
    if url is None:
        import prefect.context

        url = prefect.context.get_settings_context().settings.api.url
        os.environ["PREFECT_API_URL"] = url or DEFAULT_PREFECT_API
        if not url:
            prefect.context.refresh_global_settings_context()
    return os.environ["PREFECT_API_URL"]


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:  # a setting with fixed choices given another value: refused at start
        first = exc.errors()[0]
        name = "REGFLOW_" + "_".join(str(part) for part in first["loc"]).upper()
        given = "" if "URL" in name else f" (given {first.get('input')!r})"  # a URL may carry a password
        raise InvalidInput(f"{name}: {first['msg']}{given}") from None
