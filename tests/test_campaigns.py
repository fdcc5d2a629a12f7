"""Spot-check campaigns: the plan filed, the random draw reproducible by anyone from its
record (a new process gets the same result), never an inspector with a conflict, at least
two per target; an altered record caught. The database is real; no Prefect is needed."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from kernel.errors import InvalidInput
from kernel.settings import PROJECT_ROOT, get_settings
from rules.campaigns import draw, parse_plan
from rules.registers import parse_inspectors, parse_targets
from storage.db import session_scope
from tests.conftest import cli, shell

REGISTERS = PROJECT_ROOT / "data" / "registers"
PLAN = PROJECT_ROOT / "data" / "campaigns" / "example.yaml"
AUTHORITIES = {"330106", "330108"}


def registers():
    targets = parse_targets(
        (REGISTERS / "targets.csv").read_text(encoding="utf-8"), source="t", authorities=AUTHORITIES
    )
    inspectors = parse_inspectors((REGISTERS / "inspectors.csv").read_text(encoding="utf-8"), source="i",
                                  authorities=AUTHORITIES)  # fmt: skip
    return targets, inspectors


def test_the_same_seed_draws_the_same_and_no_inspector_with_a_conflict():
    plan = parse_plan(PLAN.read_text(encoding="utf-8"), source="plan")
    targets, inspectors = registers()
    by_login = {i.login: i for i in inspectors}
    results = {}
    for seed in range(300):
        samples = draw(plan, targets, inspectors, seed)
        assert samples == draw(plan, targets, inspectors, seed)  # reproducible
        assert [s["category"] for s in samples] == [q.category for q in plan.draw]
        assert len({s["uscc"] for s in samples}) == len(samples)
        for s in samples:
            assert len(set(s["inspectors"])) == plan.inspectors_per_target >= 2
            for login in s["inspectors"]:
                assert s["uscc"] not in by_login[login].conflicts and s["category"] in by_login[login].qualifications
        results[seed] = json.dumps(samples, ensure_ascii=False)
    assert len(set(results.values())) > 1  # another seed, another draw
    # The order of the register's rows does not matter, only their content.
    assert draw(plan, list(reversed(targets)), list(reversed(inspectors)), 7) == draw(plan, targets, inspectors, 7)


def test_a_plan_the_registers_cannot_serve_is_refused_in_one_line():
    targets, inspectors = registers()
    text = PLAN.read_text(encoding="utf-8")
    too_many = parse_plan(
        text.replace("{category: 电动自行车, targets: 1}", "{category: 电动自行车, targets: 9}"), source="p"
    )
    with pytest.raises(InvalidInput, match="电动自行车: 9 target\\(s\\) asked, 2 in the register"):
        draw(too_many, targets, inspectors, 1)
    for bad, message in (
        (text.replace("inspectors_per_target: 2", "inspectors_per_target: 1"), "inspectors_per_target"),
        (text.replace("D: 4}", "E: 4}"), "unknown risk grade 'E'"),
        (text.replace("{start: 2027-01-05, end: 2027-03-31}", "{start: 2027-03-05, end: 2027-01-31}"), "end is before"),
        ("key: [", "not valid YAML"),
    ):
        with pytest.raises(InvalidInput, match=message):
            parse_plan(bad, source="p.yaml")


@pytest.fixture
def prefect_away():
    """No Prefect server where the API points: a draw stands, its run is left to the watcher."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        yield


def test_a_campaign_filed_drawn_published_and_verified_in_another_process(own_database, prefect_away, tmp_path):
    for kind in ("targets", "inspectors"):
        assert cli("register", "import", kind, str(REGISTERS / f"{kind}.csv"), "--by", "赵六").code == 0
    assert cli("campaign", "create", str(PLAN), "--by", "路人甲").code == 8
    filed = cli("campaign", "create", str(PLAN), "--by", "赵六")
    assert filed.code == 0, filed.err
    assert cli("campaign", "create", str(PLAN), "--by", "赵六").code == 4  # filed once
    with session_scope() as session:
        told = {r[0] for r in session.execute(sa.text("SELECT tag FROM notification WHERE subject = :s"),
                                               {"s": "CAMPAIGN-2027-q1-xihu"})}  # fmt: skip
    assert told >= {"330106.duty", "330100.duty"}  # the superior authority is told
    assert cli("campaign", "verify-draw", "2027-q1-xihu").code == 4  # not drawn yet

    result = cli("campaign", "draw", "2027-q1-xihu", "--seed", "20270105", "--by", "赵六", "--json")
    # Drawn and on record (printed), its run left to the watcher while Prefect is away.
    assert result.code == 6 and "is drawn, but its run could not be started" in result.err
    drawn = json.loads(result.out)
    assert drawn["seed"] == 20270105 and drawn["algorithm"] == "regflow-draw/1" and len(drawn["samples"]) == 3
    assert cli("campaign", "draw", "2027-q1-xihu", "--by", "赵六").code == 4  # drawn once
    published = json.loads((get_settings().home / "public" / "draws" / "2027-q1-xihu.json").read_text())
    assert published["samples"] == drawn["samples"] and published["seed"] == 20270105

    # Anyone re-runs it from the record, in a process of their own.
    again = shell("campaign", "verify-draw", "2027-q1-xihu", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["registers_changed_since"] == []
    # The register changes later: the draw still verifies from what it drew, and says so.
    changed = tmp_path / "targets.csv"
    rows = (REGISTERS / "targets.csv").read_text(encoding="utf-8").splitlines()
    changed.write_text("\n".join([rows[0], rows[1].rsplit(",", 1)[0] + ",A", *rows[2:]]) + "\n", encoding="utf-8")
    assert cli("register", "import", "targets", str(changed), "--by", "赵六").code == 0
    assert json.loads(cli("campaign", "verify-draw", "2027-q1-xihu", "--json").out)["registers_changed_since"] == [
        "targets"]  # fmt: skip

    # An altered record is caught.
    with session_scope() as session:
        stored = session.execute(sa.text("SELECT samples FROM campaign")).scalar_one()
        samples = json.loads(stored) if isinstance(stored, str) else stored  # JSON as text (SQLite) or parsed
        samples[0]["inspectors"] = ["lisi", "sunqi"]
        session.execute(sa.text("UPDATE campaign SET samples = :s"), {"s": json.dumps(samples, ensure_ascii=False)})
    tampered = cli("campaign", "verify-draw", "2027-q1-xihu")
    assert tampered.code == 7 and "does not give the recorded draw" in tampered.err


def test_a_product_a_superior_campaign_covers_is_not_drawn_again_below(own_database, prefect_away, tmp_path):
    """Product Quality Law Art. 15: what the city's campaign checks in the period, the
    district does not check again; the draw records why, and still re-runs to itself."""
    staff = tmp_path / "inspectors.csv"
    city_staff = "市局甲,city-a,330100,电动自行车,\n市局乙,city-b,330100,电动自行车,\n"
    staff.write_text((REGISTERS / "inspectors.csv").read_text(encoding="utf-8") + city_staff, encoding="utf-8")
    assert cli("register", "import", "targets", str(REGISTERS / "targets.csv"), "--by", "赵六").code == 0
    assert cli("register", "import", "inspectors", str(staff), "--by", "测试员").code == 0  # a head at every level
    # Later than six months after the first test's campaign, which the same district drew.
    later = PLAN.read_text(encoding="utf-8").replace("{start: 2027-01-05, end: 2027-03-31}",
                                                     "{start: 2027-08-01, end: 2027-09-30}")  # fmt: skip
    city = tmp_path / "city.yaml"
    city.write_text(later.replace("key: 2027-q1-xihu", "key: 2027-q1-hz")
                    .replace('authority: "330106"', 'authority: "330100"')
                    .replace("  - {category: 儿童玩具, targets: 1}\n  - {category: 电线电缆, targets: 1}\n", ""),
                    encoding="utf-8")  # fmt: skip
    assert cli("campaign", "create", str(city), "--by", "测试员").code == 0
    assert cli("campaign", "draw", "2027-q1-hz", "--seed", "1", "--by", "测试员").code == 6
    city_drawn = json.loads(cli("campaign", "show", "2027-q1-hz", "--json").out)["samples"]
    assert [s["category"] for s in city_drawn] == ["电动自行车"]  # from the districts' targets, by city inspectors

    district = tmp_path / "district.yaml"
    district.write_text(later.replace("key: 2027-q1-xihu", "key: 2027-q1-xh"),
                        encoding="utf-8")  # fmt: skip
    assert cli("campaign", "create", str(district), "--by", "赵六").code == 0
    drawn = json.loads(cli("campaign", "draw", "2027-q1-xh", "--seed", "1", "--by", "赵六", "--json").out)
    covered = f"{city_drawn[0]['uscc']}|电动自行车"
    assert drawn["excluded"] == {covered: "covered by 330100's campaign 2027-q1-hz (产品质量法第十五条)"}
    assert city_drawn[0]["uscc"] not in {s["uscc"] for s in drawn["samples"] if s["category"] == "电动自行车"}
    assert cli("campaign", "verify-draw", "2027-q1-xh").code == 0
    # Asking for more than the register has left says why.
    greedy = tmp_path / "greedy.yaml"
    greedy.write_text(district.read_text(encoding="utf-8").replace("key: 2027-q1-xh", "key: 2027-q1-more")
                      .replace("{category: 电动自行车, targets: 1}", "{category: 电动自行车, targets: 3}"),
                      encoding="utf-8")  # fmt: skip
    assert cli("campaign", "create", str(greedy), "--by", "赵六").code == 0
    refused = cli("campaign", "draw", "2027-q1-more", "--by", "赵六")
    assert refused.code == 2 and "3 target(s) asked, 0 in the register less 2 excluded, e.g. " in refused.err
