"""Market-regulation authorities and their supervision hierarchy.

Each authority knows its superior; the chain upward is how reports travel and how
misses escalate (county -> city -> province -> national).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from kernel.errors import InvalidPlan, UnknownAuthority


class Tier(str, Enum):
    county = "county"
    city = "city"
    province = "province"
    national = "national"

    @property
    def rank(self) -> int:
        return list(Tier).index(self)


class AuthoritySpec(BaseModel):
    code: str = Field(pattern=r"^[0-9A-Za-z_-]{2,32}$")
    name: str = Field(min_length=1, max_length=100)
    name_en: str = Field(default="", max_length=200)
    tier: Tier
    superior: str | None = None
    # The duty office of the people's government of its region (本级人民政府总值班室),
    # told of emergencies at the levels a plan names; its channel is the tag
    # `<code>.government` in the apprise config.
    government: str | None = Field(default=None, max_length=100)


class AuthorityTree(BaseModel):
    authorities: list[AuthoritySpec]

    @model_validator(mode="after")
    def _check_hierarchy(self) -> AuthorityTree:
        by_code = {a.code: a for a in self.authorities}
        if len(by_code) != len(self.authorities):
            raise ValueError("authority codes must be unique")
        for a in self.authorities:
            if a.superior is None:
                if a.tier is not Tier.national:
                    raise ValueError(f"{a.code}: only the national authority has no superior")
                continue
            sup = by_code.get(a.superior)
            if sup is None:
                raise ValueError(f"{a.code}: superior {a.superior!r} is not listed")
            if sup.tier.rank <= a.tier.rank:
                raise ValueError(f"{a.code}: superior {sup.code} must be of a higher tier")
        return self

    def get(self, code: str) -> AuthoritySpec:
        for a in self.authorities:
            if a.code == code:
                return a
        raise UnknownAuthority(f"unknown authority {code!r}")

    def chain_up(self, code: str) -> list[AuthoritySpec]:
        """The authorities above `code`, nearest first."""
        chain, current = [], self.get(code)
        while current.superior:
            current = self.get(current.superior)
            chain.append(current)
        return chain


def load_authorities(path: Path) -> AuthorityTree:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return AuthorityTree.model_validate(raw)
    except FileNotFoundError as exc:
        raise InvalidPlan(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise InvalidPlan(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        raise InvalidPlan(f"{path}: {first_error(exc)}") from exc


def first_error(exc: ValidationError) -> str:
    """One line: the field's dotted path and the problem."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    return f"{where}: {msg}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
