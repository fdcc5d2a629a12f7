"""Parameter types of the deployments' Run forms: the plans and authorities known when
the flows are deployed become drop-downs in the Prefect UI, and the server enforces
them. Redeploy (`prefect deploy --all`) after adding a plan or an authority."""

from __future__ import annotations

from typing import Literal

from regflow.settings import get_settings


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
