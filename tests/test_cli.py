"""The command line as people use it: tables that never cut an identifier in an
80-column terminal or a pipe, choices shown in help and offered by shell completion,
the documented exit codes the code's own, and log files that rotate, as text or JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.cells import cell_len

from storage.db import utcnow
from tests.conftest import shell

ROOT = Path(__file__).resolve().parents[1]
REGFLOW = str(Path(sys.executable).parent / "regflow")
LONG = "某某区某某街道某某商场发生大规模食品安全事件，疑似中毒人数众多，需要紧急处理并上报"


@pytest.fixture(scope="module")
def records(module_database):
    """Incidents and cases with long titles and parties, recorded through the real task
    functions (no Prefect needed to list them)."""
    from tests.conftest import point_at

    point_at(module_database)
    from rules.cases import validate_lead
    from rules.incidents import validate_trigger
    from tasks import cases
    from tasks.incidents import trigger

    now = utcnow()
    incidents = [
        trigger(
            validate_trigger(
                dict(plan="product-quality", level="II", title=f"{LONG} {i}", location="l", authority="330106"),
                now=now,
            ),
            now=now,
        ).number
        for i in range(3)
    ]
    lead = dict(
        kind="case", title=LONG, party="杭州某某某某某某商贸有限责任公司第一分公司", source="report", authority="330106"
    )
    numbers = [cases.receive(validate_lead(lead, now=now), now=now).number for _ in range(2)]
    return incidents, numbers


@pytest.mark.parametrize("module_database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", [("incident", "list"), ("case", "list")])
def test_a_table_in_80_columns_or_a_pipe_shows_every_number_whole(records, module_database, command):
    incidents, cases = records
    expected = incidents if command[0] == "incident" else cases
    # Piped (no terminal: rich takes 80 columns), as `regflow … | grep` would see it.
    result = shell(*command, REGFLOW_DATABASE_URL=module_database, COLUMNS="80", PREFECT_API_URL="")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    for number in expected:
        assert sum(number in line for line in lines) == 1, (number, result.stdout)


def test_fixed_choices_are_shown_in_help_and_offered_by_completion():
    help_text = shell("incident", "trigger", "--help", COLUMNS="100", PREFECT_API_URL="").stdout
    assert "--level I|II|III|IV" in help_text
    report = shell("incident", "report", "--help", COLUMNS="100", PREFECT_API_URL="").stdout
    assert "--kind initial|progress|final" in report

    def complete(words: str) -> list[str]:
        env = dict(
            os.environ, _REGFLOW_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(words.split(" ")) - 1)
        )
        return subprocess.run([REGFLOW], env=env, capture_output=True, text=True, timeout=60).stdout.split()

    assert complete("regflow inc") == ["incident"]
    assert complete("regflow incident trigger --level ") == ["I", "II", "III", "IV"]
    assert "backup" in complete("regflow ba")
    script = shell("--show-completion", "bash", PREFECT_API_URL="", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert script.returncode == 0 and "_REGFLOW_COMPLETE=complete_bash" in script.stdout


def test_the_exit_codes_in_the_readme_are_the_codes_the_cli_returns():
    import kernel.errors as errors

    raised = {
        cls.exit_code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.RegflowError)
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)}
    # 0: done; 130: interrupted (Ctrl-C); every error class's own code, 1 (unexpected) included.
    assert documented == raised | {0, 130}


def test_log_files_rotate_and_can_be_json_lines(tmp_path, monkeypatch):
    from kernel.settings import get_settings
    from regflow.devstack import _spawn

    monkeypatch.setenv("REGFLOW_LOG_MAX_BYTES", "4000")
    monkeypatch.setenv("REGFLOW_LOG_BACKUPS", "2")
    monkeypatch.setenv("REGFLOW_LOG_FORMAT", "json")
    get_settings.cache_clear()
    log = tmp_path / "logs" / "chatty.log"
    program = (
        "import json\n"
        "for i in range(300): print(f'line {i} ' + 'x' * 40, flush=True)\n"
        "print(json.dumps({'time': 't', 'component': 'own', 'message': 'already json'}), flush=True)\n"
    )
    proc = _spawn([sys.executable, "-c", program], dict(os.environ), log)
    assert proc.wait(30) == 0
    deadline = time.monotonic() + 10
    while "already json" not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
        time.sleep(0.1)
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["chatty.log", "chatty.log.1", "chatty.log.2"]  # two old files kept, the rest gone
    for path in log.parent.iterdir():
        assert path.stat().st_size <= 4000
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            assert {"time", "component", "message"} <= set(entry)
    newest = (log.with_name("chatty.log.1").read_text(encoding="utf-8") + log.read_text(encoding="utf-8")).splitlines()
    last = [json.loads(line) for line in newest]
    assert last[-2]["component"] == "chatty" and last[-2]["message"].startswith("line 299 ")
    assert last[-1] == {"time": "t", "component": "own", "message": "already json"}  # passed unchanged
    get_settings.cache_clear()
