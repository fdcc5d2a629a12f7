"""Spot-check campaigns (双随机、一公开) as data, and the random draw.

A campaign plan (抽查计划, YAML) names the authority, the window, the labs, the legal
basis and, per product category, how many targets to draw; targets are weighted by
risk grade where the plan says. The draw is a pure function of the plan, the seed and
the register rows it draws from: anyone holding the same three gets the same result
(`regflow campaign verify-draw`). Pure: no database.

Algorithm `regflow-draw/1`: one `random.Random(seed)` (Python's Mersenne Twister,
stable across versions for `random()`), categories in plan order, candidates in
credit-code order; targets by weighted sampling without replacement (Efraimidis and
Spirakis: the k largest `u ** (1 / weight)`), a target drawn once across categories
and never one a superior authority's campaign covers in the same period (Product
Quality Law Art. 15: 上级监督抽查的产品，下级不得另行重复抽查);
then, per drawn target in draw order, inspectors qualified for its category, free of
any conflict with it, in login order, `n` of them by `Random.sample`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kernel.errors import InvalidInput
from rules.authorities import first_error
from rules.registers import RISK_GRADES, Inspector, Target

ALGORITHM = "regflow-draw/1"
# Short enough that `CAMPAIGN-<key>` fits a subject number (32 characters).
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{1,22}$")


class Quota(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str = Field(min_length=1, max_length=100)
    targets: int = Field(ge=1, le=10_000)


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end < self.start:
            raise ValueError("window: end is before start")
        return self


class Limits(BaseModel):
    """The campaign's own limits for steps no confirmed statutory text times (its 实施细则)."""

    model_config = ConfigDict(extra="forbid")
    testing: str = Field(description="the lab's result, from sampling")
    result_notice: str = Field(description="telling the enterprise the result, from the lab's result")
    retest: str = Field(description="the re-test's result, from the objection")
    rectification_order: str = Field(description="the order to rectify, from the final failing result")

    @model_validator(mode="after")
    def _periods(self) -> "Limits":
        from rules.durations import Period

        for name, value in self.model_dump().items():
            try:
                Period.parse(value)
            except InvalidInput as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self


class CampaignPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=_KEY.pattern)
    name: str = Field(min_length=1, max_length=200)
    authority: str = Field(min_length=1, max_length=32)
    basis: list[str] = Field(min_length=1)
    window: Window
    labs: list[str] = Field(min_length=1)
    limits: Limits
    draw: list[Quota] = Field(min_length=1)
    weights: dict[str, float] = Field(default_factory=lambda: {g: 1.0 for g in RISK_GRADES})
    inspectors_per_target: int = Field(default=2, ge=2, le=10)

    @model_validator(mode="after")
    def _checks(self) -> "CampaignPlan":
        unknown = set(self.weights) - set(RISK_GRADES)
        if unknown:
            raise ValueError(f"weights: unknown risk grade {sorted(unknown)[0]!r} (grades {', '.join(RISK_GRADES)})")
        if len(set(self.labs)) != len(self.labs):
            raise ValueError("labs: a lab is listed twice")
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError("weights: every weight must be above 0")
        categories = [q.category for q in self.draw]
        if len(set(categories)) != len(categories):
            raise ValueError("draw: a category is listed twice")
        return self


def parse_plan(text: str, *, source: str) -> CampaignPlan:
    try:
        data = yaml.safe_load(text)
        return CampaignPlan.model_validate(data if isinstance(data, dict) else {})
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    except ValidationError as exc:
        raise InvalidInput(f"{source}: {first_error(exc)}") from exc


def draw(
    plan: CampaignPlan,
    targets: list[Target],
    inspectors: list[Inspector],
    seed: int,
    *,
    within: set[str] | None = None,
    excluded: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The drawn samples, each {category, uscc, name, inspectors}: targets of the plan's
    authority and those it supervises (`within`), less those `excluded` (keyed
    `<credit code>|<category>`: a superior's campaign covers them); InvalidInput when the
    registers cannot give what the plan asks (too few targets or inspectors)."""
    rng = random.Random(seed)
    within, excluded = within or {plan.authority}, excluded or {}
    mine = sorted((t for t in targets if t.authority in within), key=lambda t: t.uscc)
    staff = sorted((i for i in inspectors if i.authority == plan.authority), key=lambda i: i.login)
    taken: set[str] = set()
    samples: list[dict[str, Any]] = []
    for quota in plan.draw:
        offered = [t for t in mine if quota.category in t.categories and t.uscc not in taken]
        candidates = [t for t in offered if f"{t.uscc}|{quota.category}" not in excluded]
        if len(candidates) < quota.targets:
            left_out = [excluded[f"{t.uscc}|{quota.category}"] for t in offered if t not in candidates]
            why = f" less {len(left_out)} excluded, e.g. {left_out[0]}" if left_out else ""
            raise InvalidInput(f"{quota.category}: {quota.targets} target(s) asked, {len(candidates)} "
                               f"in the register{why}")  # fmt: skip
        keyed = [(rng.random() ** (1.0 / plan.weights.get(t.risk, 1.0)), t) for t in candidates]
        chosen = [t for _, t in sorted(keyed, key=lambda kt: (-kt[0], kt[1].uscc))[: quota.targets]]
        for target in chosen:
            taken.add(target.uscc)
            eligible = [i for i in staff if quota.category in i.qualifications and target.uscc not in i.conflicts]
            if len(eligible) < plan.inspectors_per_target:
                raise InvalidInput(f"{target.name} ({quota.category}): {len(eligible)} qualified inspector(s) without "
                                   f"a conflict, {plan.inspectors_per_target} needed")  # fmt: skip
            picked = rng.sample(eligible, plan.inspectors_per_target)
            samples.append({"category": quota.category, "uscc": target.uscc, "name": target.name,
                            "inspectors": [i.login for i in picked]})  # fmt: skip
    return samples


def plan_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
