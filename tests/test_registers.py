"""The registers spot checks draw from: credit codes checked by their GB 32100-2015
check character, register files refused line by line with nothing half imported, the
content hash a draw records. The database is real; no Prefect is needed."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from kernel.errors import InvalidInput
from kernel.settings import PROJECT_ROOT
from rules.registers import parse_inspectors, parse_targets, uscc_check_character, valid_uscc
from storage.db import session_scope
from tests.conftest import cli

TARGETS = "name,uscc,address,authority,categories,risk\n"
GOOD = "91110000600037341L"  # a published code: its check character is L


def test_the_check_character_of_a_unified_social_credit_code():
    assert uscc_check_character(GOOD[:17]) == "L" and valid_uscc(GOOD.lower()) == GOOD
    with pytest.raises(ValueError, match="its check character should be 'L'"):
        valid_uscc(GOOD[:17] + "M")
    for bad in ("91110000600037341", "9111000060003734IL", "91110000600037341LX"):
        with pytest.raises(ValueError, match="is not 18 characters"):
            valid_uscc(bad)


@pytest.mark.parametrize(
    "text,message",
    [
        ("name,uscc\n", "t.csv:1: missing column(s) address, authority, categories, risk"),
        (TARGETS + f"甲,{GOOD},地址,330106,玩具,A\n乙,{GOOD[:17]}M,地址,330106,玩具,A\n", "t.csv:3: uscc"),
        (TARGETS + f"甲,{GOOD},地址,999999,玩具,A\n", "t.csv:2: unknown authority '999999'"),
        (TARGETS + f"甲,{GOOD},地址,330106,,A\n", "t.csv:2: categories is empty"),
        (TARGETS + f"甲,{GOOD},地址,330106,玩具,E\n", "t.csv:2: risk 'E' must be one of A, B, C, D"),
        (TARGETS + f"甲,{GOOD},地址,330106,玩具,\n", "t.csv:2: risk is empty"),
        (TARGETS + f"甲,{GOOD},地址,330106,玩具,A\n乙,{GOOD},地址,330106,玩具,B\n",
         f"t.csv:3: uscc {GOOD} is already on line 2"),
        (TARGETS, "t.csv: no rows"),
    ],
)  # fmt: skip
def test_a_bad_target_row_is_refused_with_its_line(text, message):
    with pytest.raises(InvalidInput) as refused:
        parse_targets(text, source="t.csv", authorities={"330106"})
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_an_inspectors_conflicts_are_credit_codes():
    text = f"name,login,authority,qualifications,conflicts\n张三,zhangsan,330106,玩具;电线,{GOOD}\n"
    (one,) = parse_inspectors(text, source="i.csv", authorities={"330106"})
    assert one.qualifications == ("玩具", "电线") and one.conflicts == (GOOD,)
    with pytest.raises(InvalidInput, match="i.csv:2: uscc 'X'"):
        parse_inspectors(text.replace(GOOD, "X"), source="i.csv", authorities={"330106"})
    with pytest.raises(InvalidInput, match="i.csv:2: login 'zhang san'"):
        parse_inspectors(text.replace("zhangsan", "zhang san"), source="i.csv", authorities={"330106"})


def counts() -> tuple[int, int]:
    with session_scope() as session:
        return tuple(session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                     for t in ("inspection_target", "inspector"))  # fmt: skip


def test_the_demo_registers_import_all_or_nothing_with_their_hash(own_database, tmp_path):
    shipped = PROJECT_ROOT / "data" / "registers"
    before = counts()
    broken = tmp_path / "targets.csv"
    lines = (shipped / "targets.csv").read_text(encoding="utf-8").splitlines()
    broken.write_text("\n".join([*lines, f"坏行,{GOOD[:17]}M,地址,330106,玩具,A"]) + "\n", encoding="utf-8")
    refused = cli("register", "import", "targets", str(broken), "--by", "赵六")
    assert refused.code == 2 and f"{broken}:{len(lines) + 1}: uscc" in refused.err and refused.err.count("\n") == 1
    assert counts() == before  # nothing of the file
    assert cli("register", "import", "targets", str(shipped / "targets.csv"), "--by", "路人甲").code == 8
    assert cli("register", "import", "people", str(shipped / "targets.csv")).code == 2

    first = json.loads(cli("register", "import", "targets", str(shipped / "targets.csv"), "--by", "赵六", "--json").out)
    assert first["added"] == len(lines) - 1 and first["updated"] == 0
    again = json.loads(cli("register", "import", "targets", str(shipped / "targets.csv"), "--by", "赵六", "--json").out)
    assert (again["added"], again["updated"], again["sha256"]) == (0, 0, first["sha256"])
    inspectors = cli("register", "import", "inspectors", str(shipped / "inspectors.csv"), "--by", "赵六", "--json")
    assert inspectors.code == 0, inspectors.err

    listed = json.loads(cli("register", "list", "targets", "--authority", "330106", "--json").out)
    assert listed["sha256"] == first["sha256"] and {r["authority"] for r in listed["rows"]} == {"330106"}
    # One changed row changes the hash; the same content from another file order does not.
    reordered = tmp_path / "reordered.csv"
    reordered.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n", encoding="utf-8")
    same = json.loads(cli("register", "import", "targets", str(reordered), "--by", "赵六", "--json").out)
    assert same["sha256"] == first["sha256"]
    changed = tmp_path / "changed.csv"
    changed.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",D", *lines[2:]]) + "\n", encoding="utf-8")
    moved = json.loads(cli("register", "import", "targets", str(changed), "--by", "赵六", "--json").out)
    assert moved["updated"] == 1 and moved["sha256"] != first["sha256"]
