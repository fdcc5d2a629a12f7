"""Bad input, generated (hypothesis): trigger parameters, every human-step form, plan,
rule, scenario and channel files. Each input is accepted or refused with a clear
one-line error (InvalidInput, exit code 2), nothing is half written, no other
exception escapes, and hostile text (template syntax, HTML, control characters,
very long strings, mixed scripts) comes out in messages and documents as the plain
text it was."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kernel.errors import InvalidInput
from storage.db import session_scope, utcnow

ROOT = Path(__file__).resolve().parents[1]
QUICK = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HOSTILE = st.sampled_from(
    [
        "{{ 7*7 }}",
        "{% for x in range(3) %}x{% endfor %}",
        "{{ ''.__class__.__mro__ }}",
        "<script>alert(1)</script>",
        "<b>粗体</b>",
        "a\x00b",
        "a\x1bb",
        "行1\n行2",
        "\r\n",
        "| 表 | 格 |",
        "مرحبا",
        "Ελληνικά",
        "😀",
        "‮reversed",
        "${env:HOME}",
        "%s%s%n",
        "' OR 1=1 --",
        "\\",
        "　",
    ]
)
# Hostile but acceptable in a single-line field: must pass through as plain text.
PLAIN = st.sampled_from(
    [
        "{{ 7*7 }}",
        "{% if 1 %}x{% endif %}",
        "<script>alert(1)</script>",
        "مرحبا 你好 Ελληνικά 😀",
        "${env:HOME}",
        "| a | b |",
        "杭州市西湖区文三路 1 号",
        "x" * 200,
    ]
)
TEXT = st.one_of(
    st.text(max_size=40),
    HOSTILE,
    HOSTILE,
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=60),
    st.builds(lambda a, b: a + b, HOSTILE, st.text(max_size=10)),
    st.text(min_size=150, max_size=260),
    st.just("长" * 201),
)


def _one_line(error: BaseException) -> None:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text, text


def _counts() -> tuple[int, ...]:
    with session_scope() as session:
        return tuple(
            session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("incident", "deadline", "notification", "audit_event", "step", "report")
        )


@QUICK
@given(
    title=TEXT,
    location=st.one_of(PLAIN, TEXT),
    reporter=st.one_of(st.none(), PLAIN, TEXT),
    report=st.one_of(PLAIN, TEXT),
    level=st.sampled_from(["I", "II", "III", "IV"] * 3 + ["V", "", "ii", "Ⅱ"]),
    plan=st.sampled_from(["product-quality", "food-safety"] * 4 + ["../etc/passwd", "", "product-quality\n"]),
    authority=st.sampled_from(["330106", "320102"] * 4 + ["999999", "", "330106 "]),
)
def test_trigger_parameters(own_database, title, location, reporter, report, level, plan, authority):
    from rules.incidents import validate_trigger
    from storage.incidents import get_incident
    from storage.notifications import notifications_for
    from tasks.incidents import trigger

    before = _counts()
    now = utcnow()
    try:
        incident = trigger(
            validate_trigger(
                dict(plan=plan, level=level, title=title, location=location, authority=authority, reporter=reporter),
                now=now,
            ),
            now=now,
        )
    except InvalidInput as refused:
        _one_line(refused)
        assert _counts() == before
        event("trigger refused")
        return
    event("trigger accepted")
    with session_scope() as session:
        stored = get_incident(session, number=incident.number)
        messages = notifications_for(session, subject=incident.number)
    assert stored.title == title.strip() and stored.location == location.strip()
    assert messages and all(stored.title in m.title + m.body for m in messages)  # as written, never evaluated

    # A report with the same kind of text: refused in one line, or in its document verbatim.
    from storage.incidents import reports_for
    from tasks.incidents import answer

    answer(incident.number, answer={"officer": "张三"}, source="cli", verb="arrive", now=utcnow())
    try:
        answer(
            incident.number,
            answer={"author": "李四", "text": report},
            source="cli",
            verb="report:initial",
            now=utcnow(),
        )
    except InvalidInput as refused:
        _one_line(refused)
        event("report refused")
        return
    event("report accepted")
    with session_scope() as session:
        document = reports_for(session, subject=incident.number)[0].document
    assert report.replace("\r\n", "\n").strip() in document


FORM_VALUES = st.one_of(
    TEXT,
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["2026-11-26", "2999-01-01", "tomorrow", "progress", "close", "penalty"]),
)


@pytest.mark.parametrize(
    "form",
    sorted(__import__("flows.forms", fromlist=["x"]).FORMS)
    + [f"case:{k}" for k in sorted(__import__("flows.forms", fromlist=["x"]).CASE_FORMS)],
)
@QUICK
@given(data=st.data())
def test_every_form(form, data):
    from pydantic import ValidationError

    from flows.forms import CASE_FORMS, FORMS
    from rules.authorities import first_error

    cls = CASE_FORMS[form.removeprefix("case:")] if form.startswith("case:") else FORMS[form]
    fields = list(cls.model_fields)
    answer = data.draw(st.dictionaries(st.sampled_from(fields + ["unknown"]), FORM_VALUES, max_size=len(fields) + 1))
    try:
        parsed = cls.model_validate(answer)
    except ValidationError as refused:
        message = first_error(refused)
        assert message and "\n" not in message
        return
    for name, value in parsed.model_dump().items():
        if isinstance(value, str) and name not in cls.multiline:
            assert "\n" not in value and "\x00" not in value, (name, value)


def _mutations(document: dict) -> st.SearchStrategy:
    """A valid file's content with one place changed: a key dropped, a value replaced."""
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                paths.append(path + [key])
                walk(value, path + [key])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                paths.append(path + [i])
                walk(value, path + [i])

    walk(document, [])
    replacement = st.one_of(
        st.none(), st.integers(-5, 10**6), TEXT, st.sampled_from(["0h", "-1d", "99999wd", "3x", "150%", [], {}])
    )

    def mutate(path, action, value):
        changed = copy.deepcopy(document)
        parent = changed
        for key in path[:-1]:
            parent = parent[key]
        if action == "drop":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return changed

    return st.builds(mutate, st.sampled_from(paths), st.sampled_from(["drop", "set"]), replacement)


def _file_property(tmp_path_factory, source: Path, load, data) -> None:
    original = yaml.safe_load(source.read_text(encoding="utf-8"))
    changed = data.draw(_mutations(original))
    path = tmp_path_factory.mktemp("mutated") / source.name
    path.write_text(yaml.safe_dump(changed, allow_unicode=True), encoding="utf-8")
    try:
        load(path)
    except InvalidInput as refused:
        _one_line(refused)
        assert str(path.name) in str(refused) or str(path) in str(refused), str(refused)


@QUICK
@given(data=st.data())
def test_plan_files(tmp_path_factory, data):
    from rules.plans import load_plan_file

    _file_property(tmp_path_factory, ROOT / "data" / "plans" / "product-quality.yaml", load_plan_file, data)


@QUICK
@given(data=st.data())
def test_rule_files(tmp_path_factory, data):
    from rules.statutes import load_rules

    _file_property(tmp_path_factory, ROOT / "data" / "rules" / "statutory.yaml", load_rules, data)


@QUICK
@given(data=st.data())
def test_drill_scenarios(tmp_path_factory, data):
    from rules.drills import load_scenario

    _file_property(tmp_path_factory, ROOT / "data" / "drills" / "standard.yaml", load_scenario, data)


@QUICK
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda tag, url: f"urls:\n  - {url}:\n    - tag: {tag}\n",
            TEXT,
            st.sampled_from(
                ["json://127.0.0.1:9/x", "mailto://u:p@localhost", "nope://", "json://${env:NOPE_UNSET}", ""]
            ),
        ),
    )
)
def test_channel_files(tmp_path_factory, text):
    from tasks.notify import load_channels

    path = tmp_path_factory.mktemp("channels") / "apprise.yml"
    path.write_text(text, encoding="utf-8")
    try:
        channels = load_channels(path)
    except InvalidInput as refused:
        _one_line(refused)
        return
    for url in channels.urls:
        assert channels.scrub(f"failed: {url}") == "failed: ***"
