"""Parameter types of the deployments' Run forms: the plans and authorities known when
the flows are deployed become drop-downs in the Prefect UI, and the server enforces
them. Redeploy (`regflow deploy`) after adding a plan or an authority."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kernel.settings import get_settings


def _plans() -> list[str]:
    return sorted(p.stem for p in get_settings().plans_dir.glob("*.yaml"))


def _authorities() -> list[tuple[str, str]]:
    from rules.authorities import load_authorities

    return [(a.code, a.name) for a in load_authorities(get_settings().authorities_file).authorities]


PLANS = _plans()
AUTHORITIES = _authorities()
PlanKey = Literal[tuple(PLANS)] if PLANS else str  # type: ignore[valid-type]
AuthorityCode = Literal[tuple(code for code, _ in AUTHORITIES)] if AUTHORITIES else str  # type: ignore[valid-type]
AUTHORITY_HELP = "承办单位 / handling authority: " + "; ".join(f"{code} {name}" for code, name in AUTHORITIES)


def Param(default: Any = ..., *, title: str, description: str | None = None, max_length: int | None = None) -> Any:
    """A Run-form field. Prefect titles every parameter with its name and keeps only
    the default and description of a pydantic Field, so the bilingual label and the
    length limit also go into the schema as extras: the UI shows the label and the
    server refuses an over-long value before a run is created."""
    extra: dict[str, Any] = {"title": title}
    if max_length is not None:
        extra["maxLength"] = max_length
        if default is ...:
            extra["minLength"] = 1
    return Field(default, description=description, max_length=max_length, json_schema_extra=extra)
