"""The `regflow` command line.

Exit codes: kernel/errors.py, and the table in the README.
Errors are one line on stderr; no traceback for a user's own mistake.
"""

from __future__ import annotations

import sys

import typer

from kernel.errors import RegflowError
from kernel.settings import export_dotenv, use_prefect_api_url
from regflow.cli.output import err

# typer ships its own copy of click: take the exception classes from typer itself.
_click = sys.modules[next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException").__module__]

# The module that registers each top-level command. A command line loads only the
# module it names (a trigger starts ~0.2 s sooner than with all seven); help, or a
# name not here, loads them all. tests/test_project.py keeps this table true.
COMMANDS = {
    "incident": "incident",
    "audit": "audit",
    "backup": "backup",
    "restore": "backup",
    "lead": "case",
    "complaint": "case",
    "case": "case",
    "doctor": "doctor",
    "db": "admin",
    "authorities": "admin",
    "plans": "admin",
    "watch": "admin",
    "worker": "admin",
    "deploy": "admin",
    "inbox": "admin",
    "up": "admin",
    "rules": "supervise",
    "escalation": "supervise",
    "deadline": "supervise",
    "board": "supervise",
    "due": "supervise",
    "drill": "drill",
    "drills": "drill",
    "action": "action",
    "duty": "duty",
    "register": "register",
    "campaign": "campaign",
    "sample": "sample",
    "signal": "risk",
    "risk": "risk",
    "recall": "risk",
    "publication": "credit",
    "serious-list": "credit",
    "credit": "credit",
    "referral": "credit",
    "stats": "stats",
    "report": "stats",
    "flag": "stats",
}
MODULES = tuple(dict.fromkeys(COMMANDS.values()))  # each once, in the order help lists them


def _root() -> None:
    pass


def build(argv: list[str] | None = None) -> typer.Typer:
    """The command tree, with only what `argv` needs (everything if None)."""
    import importlib

    app = typer.Typer(
        help="regflow: emergency response and enforcement workflows on Prefect.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        add_completion=True,
    )
    app.callback()(_root)  # a group even when one command is loaded, so its name is still required
    name = next((arg for arg in argv if not arg.startswith("-")), None) if argv else None
    for module_name in [COMMANDS[name]] if name in COMMANDS else MODULES:
        importlib.import_module(f"regflow.cli.{module_name}").register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        export_dotenv()
        if argv and argv[0] not in ("up", "--help"):  # `up` serves its own API
            use_prefect_api_url()
        result = build(argv)(args=argv, prog_name="regflow", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except RegflowError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    except _click.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else str(exc))
        return 0
    except _click.ClickException as exc:
        err(f"error: {exc.format_message()}")
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err("interrupted")
        return 130
    except Exception as exc:
        # A Prefect call outside the adapter's own (a secret block read for a channel):
        # translated the same way, refused credentials being the user's to fix.
        httpx = sys.modules.get("httpx")  # imported only if Prefect was
        if httpx is None or not isinstance(exc, httpx.HTTPError):
            raise
        from tasks.runs import translate

        mapped = translate(exc)
        if mapped is None:
            raise
        err(f"error: {mapped}")
        return mapped.exit_code
