"""The `regflow` command line.

Exit codes: 0 ok; 1 unexpected; 2 invalid input; 3 not found; 4 step conflict
(answered twice or out of order); 5 no holiday calendar; 6 platform unavailable;
7 audit log tampered.
Errors are one line on stderr; no traceback for a user's own mistake.
"""

from __future__ import annotations

import sys

import typer

from regflow.cli import admin, audit, case, drill, incident, supervise
from regflow.cli.doctor import doctor
from regflow.cli.output import err
from regflow.errors import RegflowError

# typer ships its own copy of click: take the exception classes from typer itself.
_click = sys.modules[next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException").__module__]

app = typer.Typer(help="regflow: emergency response and enforcement workflows on Prefect.",
                  no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  add_completion=False)
app.add_typer(incident.app, name="incident")
app.add_typer(audit.app, name="audit")
case.register(app)
app.command()(doctor)
admin.register(app)
supervise.register(app)
drill.register(app)


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, prog_name="regflow", standalone_mode=False)
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
        # Prefect's client raises httpx errors as they come; credentials are the user's to fix.
        if getattr(getattr(exc, "response", None), "status_code", None) in (401, 403):
            from regflow.runs import CREDENTIALS

            err(f"error: {CREDENTIALS}")
            return 6
        raise


def entry() -> None:
    import os

    # Without an API address Prefect's client would start a throwaway server of its
    # own, which knows none of our runs: default to where `make run` serves it.
    os.environ.setdefault("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    sys.exit(main())
