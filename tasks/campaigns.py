"""Spot-check campaigns: filing the plan (its authority's head approves; the superior
authority is told), the random draw recorded with all it needs to be re-run, and the
re-run itself. The draw is published under `$REGFLOW_HOME/public/draws/<key>.json`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import pendulum

from kernel.errors import DrawMismatch, NotFound, StepConflict
from kernel.settings import get_settings
from rules.campaigns import ALGORITHM, draw, parse_plan, plan_hash
from rules.durations import Period
from rules.files import read_text
from rules.registers import Inspector, Target, register_hash
from rules.statutes import load_rules
from storage import audit
from storage import registers as register_rows
from storage import samples as sample_rows
from storage.authorities import load_tree
from storage.campaigns import Campaign, get_campaign, list_campaigns
from storage.db import session_scope
from tasks.access import require_head
from tasks.notify import queue
from tasks.registers import content


def subject_of(key: str) -> str:
    return f"CAMPAIGN-{key}"


def create(path: Path, *, by: str, now: dt.datetime) -> Campaign:
    text = read_text(path)
    plan = parse_plan(text, source=str(path))
    with session_scope() as session:
        tree = load_tree(session)
        tree.get(plan.authority)
        if get_campaign(session, key=plan.key) is not None:
            raise StepConflict(f"campaign {plan.key} is already filed")
        require_head(
            session,
            by,
            tree,
            plan.authority,
            subject=subject_of(plan.key),
            action=f"approve campaign {plan.key}",
            now=now,
        )
        campaign = Campaign(key=plan.key, name=plan.name, authority_code=plan.authority, plan_text=text,
                            plan_sha256=plan_hash(text), created_at=now, created_by=by)  # fmt: skip
        session.add(campaign)
        session.flush()
        superior = tree.chain_up(plan.authority)
        tags = [f"{plan.authority}.duty", *([f"{superior[0].code}.duty"] if superior else [])]
        queue(session, number=subject_of(plan.key), key="filed", tags=tags, template="campaign_filed", now=now,
              subject=None, campaign=campaign, plan=plan, by=by, authority=tree.get(plan.authority))  # fmt: skip
        audit.record(session, at=now, actor=by, action="campaign.filed", subject=subject_of(plan.key),
                     plan_sha256=campaign.plan_sha256, told=tags)  # fmt: skip
        session.expunge(campaign)
        return campaign


def run_draw(key: str, *, by: str, now: dt.datetime, seed: int | None = None) -> Campaign:
    """Draw once: the targets and inspectors, with the seed (random unless given), the
    algorithm, the rows drawn from and the registers' hashes, all on record."""
    with session_scope() as session:
        campaign = _load(session, key)
        if campaign.status != "approved":
            raise StepConflict(f"campaign {campaign.key} was drawn at {campaign.drawn_at} by {campaign.drawn_by}")
        tree = load_tree(session)
        require_head(
            session,
            by,
            tree,
            campaign.authority_code,
            subject=subject_of(campaign.key),
            action=f"draw campaign {campaign.key}",
            now=now,
        )
        plan = parse_plan(campaign.plan_text, source=campaign.key)
        within = {a.code for a in tree.authorities if a.code == plan.authority
                  or plan.authority in {up.code for up in tree.chain_up(a.code)}}  # fmt: skip
        targets = [_target(t) for t in register_rows.targets(session) if t.authority_code in within]
        inspectors = [_inspector(i) for i in register_rows.inspectors(session, authority=plan.authority)]
        codes = {t.uscc for t in targets}
        excluded = {k: why for k, why in (_covered_above(session, tree, plan) | _checked_lately(session, plan)).items()
                    if k.split("|", 1)[0] in codes}  # fmt: skip
        seed = secrets.randbits(62) if seed is None else seed
        samples = draw(plan, targets, inspectors, seed, within=within, excluded=excluded)
        campaign.seed, campaign.algorithm, campaign.samples = seed, ALGORITHM, samples
        campaign.snapshot = {
            "targets": [dataclasses.asdict(t) | {"line": 0} for t in targets],
            "inspectors": [dataclasses.asdict(i) | {"line": 0} for i in inspectors],
            "targets_sha256": content(session, "targets"),
            "inspectors_sha256": content(session, "inspectors"),
            "drawn_from_sha256": _rows_hash(targets, inspectors),
            "within": sorted(within),
            "excluded": excluded,
        }
        campaign.status, campaign.drawn_at, campaign.drawn_by = "drawn", now, by
        session.add(campaign)
        audit.record(session, at=now, actor=by, action="campaign.drawn", subject=subject_of(campaign.key), seed=seed,
                     algorithm=ALGORITHM, samples=len(samples),
                     drawn_from_sha256=campaign.snapshot["drawn_from_sha256"])  # fmt: skip
        session.flush()
        session.expunge(campaign)
    _publish(campaign)
    return campaign


def verify(key: str) -> dict[str, Any]:
    """Re-run the recorded draw from its record; DrawMismatch if it differs."""
    with session_scope() as session:
        campaign = _load(session, key)
        if campaign.status != "drawn":
            raise StepConflict(f"campaign {campaign.key} has not been drawn yet")
        current = {"targets": content(session, "targets"), "inspectors": content(session, "inspectors")}
        session.expunge(campaign)
    snapshot = campaign.snapshot or {}
    targets = [Target(**{**t, "categories": tuple(t["categories"])}) for t in snapshot.get("targets", [])]
    inspectors = [Inspector(**{**i, "qualifications": tuple(i["qualifications"]), "conflicts": tuple(i["conflicts"])})
                  for i in snapshot.get("inspectors", [])]  # fmt: skip
    if _rows_hash(targets, inspectors) != snapshot.get("drawn_from_sha256"):
        raise DrawMismatch(f"campaign {campaign.key}: the recorded register rows do not match their recorded hash")
    again = draw(parse_plan(campaign.plan_text, source=campaign.key), targets, inspectors, campaign.seed,
                 within=set(snapshot.get("within", [])), excluded=snapshot.get("excluded", {}))  # fmt: skip
    if again != campaign.samples:
        raise DrawMismatch(f"campaign {campaign.key}: re-running {campaign.algorithm} with seed {campaign.seed} "
                           "does not give the recorded draw")  # fmt: skip
    return {"key": campaign.key, "seed": campaign.seed, "algorithm": campaign.algorithm, "samples": len(again),
            "registers_changed_since": [k for k in current if current[k] != snapshot.get(f"{k}_sha256")]}  # fmt: skip


def overview(key: str) -> dict[str, Any]:
    with session_scope() as session:
        c = _load(session, key)
        return {"key": c.key, "name": c.name, "authority": c.authority_code, "status": c.status,
                "plan_sha256": c.plan_sha256, "created_at": c.created_at, "created_by": c.created_by, "seed": c.seed,
                "algorithm": c.algorithm, "drawn_at": c.drawn_at, "drawn_by": c.drawn_by, "samples": c.samples or [],
                "registers": {k: (c.snapshot or {}).get(f"{k}_sha256") for k in ("targets", "inspectors")},
                "excluded": (c.snapshot or {}).get("excluded", {}), "flow_run_id": c.flow_run_id,
                "created": [{"number": s.number, "uscc": s.uscc, "category": s.category, "result": s.result}
                            for s in sample_rows.samples_of(session, c.key)]}  # fmt: skip


def listing() -> list[dict[str, Any]]:
    with session_scope() as session:
        return [{"key": c.key, "name": c.name, "authority": c.authority_code, "status": c.status,
                 "samples": len(c.samples or [])} for c in list_campaigns(session)]  # fmt: skip


def _covered_above(session, tree, plan) -> dict[str, str]:
    """Products a superior authority's drawn campaign covers in an overlapping window:
    not to be checked again below it (Product Quality Law Art. 15)."""
    above = {a.code for a in tree.chain_up(plan.authority)}
    covered = {}
    for other in list_campaigns(session):
        if other.authority_code not in above or other.status != "drawn":
            continue
        window = parse_plan(other.plan_text, source=other.key).window
        if window.start > plan.window.end or plan.window.start > window.end:
            continue
        for sample in other.samples or []:
            covered[f"{sample['uscc']}|{sample['category']}"] = (
                f"covered by {other.authority_code}'s campaign {other.key} (产品质量法第十五条)"
            )
    return covered


def _checked_lately(session, plan) -> dict[str, str]:
    """Products this authority checked (sampled, or drawn for a window not yet sampled)
    so close to this plan's window that a check in it would repeat one within the bar of
    data/rules (sample.repeat_bar, marked unconfirmed)."""
    from rules.samples import REPEAT_RULE

    limit = load_rules(get_settings().rules_file, authority=plan.authority).rules.limit(REPEAT_RULE)
    months = Period.parse(limit.period)
    sampled = {(s.campaign_key, s.uscc, s.category): s.sampled_on for s in sample_rows.all_samples(session)}
    found = {}
    for other in list_campaigns(session):
        if other.authority_code != plan.authority or other.status != "drawn" or other.key == plan.key:
            continue
        start = parse_plan(other.plan_text, source=other.key).window.start
        for sample in other.samples or []:
            earlier = sampled.get((other.key, sample["uscc"], sample["category"])) or start
            day = pendulum.date(earlier.year, earlier.month, earlier.day)
            bar = (day.subtract(months=months.amount), day.add(months=months.amount))
            if plan.window.start < bar[1] and plan.window.end > bar[0]:
                found[f"{sample['uscc']}|{sample['category']}"] = (
                    f"checked by {plan.authority} in {other.key} ({earlier}), within {limit.period} "
                    f"({limit.label}: {limit.source})"
                )
    return found


def _load(session, key: str) -> Campaign:
    campaign = get_campaign(session, key=key)
    if campaign is None:
        raise NotFound(f"no campaign {key!r} (list them with `regflow campaign list`)")
    return campaign


def _target(row) -> Target:
    return Target(row.uscc, row.name, row.address, row.authority_code, tuple(row.categories), row.risk)


def _inspector(row) -> Inspector:
    return Inspector(row.login, row.name, row.authority_code, tuple(row.qualifications), tuple(row.conflicts))


def _rows_hash(targets: list[Target], inspectors: list[Inspector]) -> str:
    rows = [("T", t.uscc, t.name, t.address, t.authority, t.categories, t.risk) for t in targets]
    rows += [("I", i.login, i.name, i.authority, i.qualifications, i.conflicts) for i in inspectors]
    return register_hash(rows)


def _publish(campaign: Campaign) -> Path:
    """The draw as anyone may re-run it: plan, seed, algorithm, rows drawn from, result."""
    folder = get_settings().home / "public" / "draws"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{campaign.key}.json"
    record = {"campaign": campaign.key, "name": campaign.name, "plan": campaign.plan_text, "seed": campaign.seed,
              "algorithm": campaign.algorithm, "drawn_at": campaign.drawn_at.isoformat(), **(campaign.snapshot or {}),
              "samples": campaign.samples}  # fmt: skip
    path.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
