"""The project's own wiring: deployments point at real flows, the CLI never shows a
traceback for bad input, every command has help with an example."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

from tests.conftest import cli, shell

ROOT = Path(__file__).resolve().parents[1]


def test_every_deployment_entrypoint_loads_as_the_named_flow():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    assert spec["deployments"]
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        assert flow.name == deployment["name"]
        assert deployment["work_pool"]["name"] == "regflow"


def test_bad_input_from_a_real_shell_is_one_line_without_traceback(tmp_path, use_database):
    result = shell(
        "incident",
        "trigger",
        "--plan",
        "nope",
        "--level",
        "II",
        "--title",
        "t",
        "--location",
        "l",
        "--authority",
        "330106",
        timeout=60,
        REGFLOW_DATABASE_URL=use_database,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown plan 'nope'") and result.stderr.count("\n") == 1
    missing = shell("incident", "trigger", "--plan", "x", timeout=60, REGFLOW_DATABASE_URL=use_database)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and missing.stderr.count("\n") == 1


def test_every_command_has_help_with_an_example():
    for command in (
        ["incident", "trigger"],
        ["incident", "arrive"],
        ["incident", "report"],
        ["incident", "close"],
        ["incident", "review"],
        ["incident", "show"],
        ["incident", "list"],
        ["db", "upgrade"],
        ["authorities", "load"],
        ["authorities", "list"],
        ["plans", "list"],
        ["plans", "check"],
        ["watch"],
        ["worker"],
        ["deploy"],
        ["inbox"],
        ["up"],
        ["board"],
        ["due"],
        ["rules", "list"],
        ["escalation", "list"],
        ["escalation", "ack"],
        ["deadline", "pause"],
        ["deadline", "resume"],
        ["deadline", "extend"],
    ):
        result = cli(*command, "--help")
        assert result.code == 0 and "Example: regflow" in result.out, command


def test_each_command_loads_only_its_module_and_the_table_says_which():
    """`regflow X` imports only the module COMMANDS names for X: the table must list
    every command the full tree has, each from the module that registers it."""
    import typer

    from regflow.cli import COMMANDS, MODULES, build

    assert set(typer.main.get_command(build()).commands) == set(COMMANDS)
    for name, module in COMMANDS.items():
        assert module in MODULES and name in typer.main.get_command(build([name, "--help"])).commands, name


def test_plans_check_names_the_problem(tmp_path):
    bad = tmp_path / "food-safety.yaml"
    bad.write_text("key: food-safety\nname: x\nlevels: {}\n", encoding="utf-8")
    result = cli("plans", "check", str(bad))
    assert result.code == 2 and "levels: Dictionary should have at least 1 item" in result.err
    assert cli("plans", "list").code == 0
