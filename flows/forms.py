"""The step forms as Prefect RunInput: the UI renders these when a run is suspended.

Each is the plain form of `rules/forms.py` under the same class name (Prefect keys a
run's input by it), so the UI and the CLI validate an answer with the same fields
and checks.
"""

from __future__ import annotations

from prefect.input import RunInput

from rules import forms


def _run_input(form: type[forms.BaseModel]) -> type[RunInput]:
    return type(form.__name__, (form, RunInput), {"__module__": __name__})


FORMS: dict[str, type[RunInput]] = {key: _run_input(form) for key, form in forms.FORMS.items()}
CASE_FORMS: dict[str, type[RunInput]] = {key: _run_input(form) for key, form in forms.CASE_FORMS.items()}


def run_input(key: str) -> type[RunInput]:
    """A step's form, by the key its declaration names, as the UI renders it."""
    return FORMS.get(key) or CASE_FORMS[key]
