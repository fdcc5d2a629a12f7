"""`regflow doctor` against the live test platform: all well, then each thing broken
in turn is named with what to fix."""

from __future__ import annotations

import json

from kernel.settings import get_settings
from tests.conftest import cli, on_sqlite, wait_until


def checks(*args: str) -> tuple[int, dict[str, dict]]:
    result = cli("doctor", "--json", *args)
    return result.code, {c["name"]: c for c in json.loads(result.out)}


@on_sqlite
def test_doctor_passes_on_the_platform_and_names_each_fault(platform, use_database, tmp_path, monkeypatch):
    # The worker registers with its first heartbeat a few seconds after it starts.
    code, found = wait_until(lambda: (result := checks())[0] == 0 and result, timeout=60, what="a healthy platform")
    assert set(found) == {
        "database",
        "prefect api",
        "work pool",
        "worker",
        "deployments",
        "watcher",
        "channels",
        "partners",
        "people",
        "holiday calendar",
        "duty rosters",
    }
    assert "1 watcher(s) alive" in found["watcher"]["detail"]

    # No holiday data for next year (the shipped override has none for 2027).
    empty = tmp_path / "override.yaml"
    empty.write_text("years: []\nholidays: []\nworkdays: []\n", encoding="utf-8")
    monkeypatch.setenv("REGFLOW_CALENDAR_OVERRIDE", str(empty))
    # Prefect unreachable, and a database never migrated.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("REGFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'blank.db'}")
    # Who may act: a people file with a role nobody defined.
    people = tmp_path / "people.yaml"
    people.write_text("people: [{login: a, name: A, authority: '330106', roles: [boss]}]\n", encoding="utf-8")
    monkeypatch.setenv("REGFLOW_PEOPLE_FILE", str(people))
    # A partner department whose referrals no channel carries.
    partners = tmp_path / "partners.yaml"
    partners.write_text("partners: [{key: x, department: 某局, region: '330000', channel: partner.nowhere, "
                        "takes: [listing]}]\n", encoding="utf-8")  # fmt: skip
    monkeypatch.setenv("REGFLOW_PARTNERS_FILE", str(partners))
    get_settings.cache_clear()
    code, found = checks()
    assert code == 1
    assert not found["partners"]["ok"] and "partner.nowhere" in found["partners"]["detail"]
    assert not found["holiday calendar"]["ok"] and "2027" in found["holiday calendar"]["detail"]
    assert str(empty) in found["holiday calendar"]["fix"]
    assert not found["prefect api"]["ok"] and "prefect server start" in found["prefect api"]["fix"]
    assert not found["database"]["ok"] and found["database"]["fix"].startswith("regflow db upgrade")
    assert not found["watcher"]["ok"]
    assert not found["people"]["ok"] and "unknown role 'boss'" in found["people"]["detail"]
    table = cli("doctor")
    assert table.code == 1 and "FAIL" in table.out and "Traceback" not in table.err
