"""Every declared lifecycle, walked: reachable steps, forms, roles, branches, notices,
deadlines with a rule, documents with a template, handlers that belong to a step.

A new lifecycle is checked here the day it is declared, in milliseconds, before any
flow runs it.
"""

from __future__ import annotations

import typing

import pytest
from pydantic.fields import FieldInfo

from kernel.settings import get_settings
from rules.cases import rule_of
from rules.forms import form_class
from rules.lifecycle import Branch, Lifecycle, Step
from rules.lifecycles import LIFECYCLES
from rules.people import ROLES
from rules.plans import load_plan
from rules.statutes import load_rules

NAMES = sorted(LIFECYCLES)
RECIPIENTS = {"desk", "head", "upward", "listing"}


def _steps(lifecycle: Lifecycle) -> list[Step]:
    return [lifecycle.step(f"{s.name}-1") if s.repeats else s for s in lifecycle.steps]


def _values(field: FieldInfo) -> set | None:
    """The values a form field can take, where they are few (a choice or a flag)."""
    annotation = field.annotation
    if annotation is bool:
        return {True, False}
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    return None


def _branches(then) -> list[Branch]:
    if not isinstance(then, Branch):
        return []
    return [then] + [b for target in (*then.to.values(), then.default) for b in _branches(target)]


@pytest.mark.parametrize("name", NAMES)
def test_every_step_is_reachable_and_every_target_declared(name):
    lifecycle = LIFECYCLES[name]
    assert lifecycle.first in lifecycle.by_name
    assert lifecycle.reachable() == set(lifecycle.by_name), "declared but never reached"
    for step in lifecycle.steps:
        for target in step.targets():
            assert target is None or target in lifecycle.by_name, f"{step.name} leads to unknown {target!r}"


@pytest.mark.parametrize("name", NAMES)
def test_every_step_has_a_form_a_role_and_branches_its_form_can_take(name):
    for step in _steps(LIFECYCLES[name]):
        form = form_class(step.form)
        assert step.role in ROLES, f"{step.name}: unknown role {step.role!r}"
        assert form.signer in form.model_fields, f"{step.name}: its form has no {form.signer!r} to sign with"
        for branch in _branches(step.then):
            assert branch.on in form.model_fields, f"{step.name} branches on {branch.on!r}, not on its form"
            allowed = _values(form.model_fields[branch.on])
            assert allowed is None or set(branch.to) <= allowed, f"{step.name}: {set(branch.to) - allowed}"
        if isinstance(step.notice, dict):
            on = step.notice_on or step.then.on
            allowed = _values(form.model_fields[on])
            assert allowed is not None and set(step.notice) <= allowed, f"{step.name}: notices for {on}"
        if step.starts_from:
            assert step.starts_from in form.model_fields
        if step.cancels_when:
            assert step.cancels_when[0] in form.model_fields


@pytest.mark.parametrize("name", NAMES)
def test_every_notice_goes_to_recipients_a_context_knows(name):
    for step in LIFECYCLES[name].steps:
        notices = step.notice.values() if isinstance(step.notice, dict) else [step.notice] if step.notice else []
        for notice in notices:
            assert set(notice.to) <= RECIPIENTS, f"{step.name}: {notice.to}"


def _deadlines(lifecycle: Lifecycle) -> set[str]:
    return {d for s in _steps(lifecycle) for d in (*s.meets, *s.opens, *s.handler_opens)}


@pytest.mark.parametrize("name", ["case", "complaint", "lookback"])
def test_every_case_deadline_follows_a_rule_in_the_rule_file(name):
    rules = load_rules(get_settings().rules_file).rules
    lifecycle = LIFECYCLES[name]
    for deadline in _deadlines(lifecycle) | ({lifecycle.clock} if lifecycle.clock else set()):
        key = rule_of(deadline)
        assert key is not None, f"{deadline}: no rule"
        assert rules.limit(key) is not None, f"{deadline}: rule {key} is not in the rule file"


def test_every_emergency_deadline_has_a_period_at_every_level_of_every_plan():
    lifecycle = LIFECYCLES["emergency"]
    plans = sorted(get_settings().plans_dir.glob("*.yaml"))
    assert plans
    for path in plans:
        plan = load_plan(get_settings().plans_dir, path.stem).plan
        for rules in plan.levels.values():
            for deadline in _deadlines(lifecycle) | {"progress-2"}:
                period = "progress_every" if deadline.startswith("progress-") else deadline
                assert rules.deadlines.period(period), f"{path.name}: no {period}"


@pytest.mark.parametrize("name", NAMES)
def test_every_document_has_a_title_and_a_template(name):
    lifecycle = LIFECYCLES[name]
    templates = get_settings().templates_dir / "documents"
    for step in lifecycle.steps:
        for kind in step.documents:
            assert kind in lifecycle.documents, f"{step.name}: document {kind!r} has no title"
    for kind, document in lifecycle.documents.items():
        assert (templates / document.template).is_file(), f"{kind}: no template {document.template}"


def test_every_handler_belongs_to_a_step_and_they_stand_in_lifecycle_order():
    from tasks.cases import CASES
    from tasks.incidents import INCIDENTS

    for kind, lifecycles in ((INCIDENTS, ["emergency"]), (CASES, ["case", "complaint", "lookback"])):
        order = [s.name for name in lifecycles for s in LIFECYCLES[name].steps]
        handled = list(kind.handlers)
        assert set(handled) <= set(order), f"handlers of no step: {set(handled) - set(order)}"
        assert handled == sorted(handled, key=order.index), "handlers out of lifecycle order"


def test_a_walk_finds_an_unreachable_step_and_a_missing_target():
    broken = Lifecycle(
        name="x",
        title="x",
        first="a",
        steps=(
            Step("a", "a", "duty", "report", then="b"),
            Step("b", "b", "duty", "report"),
            Step("c", "c", "duty", "report", then="nowhere"),
        ),
    )
    assert broken.reachable() == {"a", "b"}
    assert "nowhere" not in broken.by_name


def test_the_diagram_draws_every_step_and_branch():
    drawn = LIFECYCLES["case"].mermaid()
    for step in LIFECYCLES["case"].steps:
        assert step.name.replace("-", "_") in drawn
    assert "finding=transfer" in drawn and "end_" in drawn


def test_docs_draw_the_lifecycles_as_declared():
    from kernel.settings import PROJECT_ROOT
    from rules.lifecycles import markdown

    assert (PROJECT_ROOT / "docs" / "lifecycles.md").read_text(encoding="utf-8") == markdown(), (
        "docs/lifecycles.md is stale: python -m rules.lifecycles > docs/lifecycles.md"
    )
