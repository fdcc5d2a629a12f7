"""Every error regflow raises on purpose, in one tree.

    RegflowError                 base; `str(err)` is one line a user can act on
    ├── InvalidInput             the user's own input is wrong (exit 2)
    │   ├── UnknownPlan
    │   ├── UnknownAuthority
    │   └── InvalidPlan          a plan or data file failed validation
    ├── NotFound                 no such incident (exit 3)
    ├── StepConflict             a step answered twice or out of order (exit 4)
    ├── CalendarUnavailable      no holiday data for a year (exit 5)
    ├── PlatformUnavailable      Prefect or the database cannot be reached (exit 6)
    ├── AuditTampered            `regflow audit verify` found a broken chain (exit 7)
    └── Forbidden                the person may not take this step (exit 8)

The CLI maps each to its exit code and prints the message alone: no traceback
reaches a user for their own mistake. Messages never carry secrets.
"""

from __future__ import annotations


class RegflowError(Exception):
    exit_code = 1


class InvalidInput(RegflowError):
    exit_code = 2


class UnknownPlan(InvalidInput):
    pass


class UnknownAuthority(InvalidInput):
    pass


class InvalidPlan(InvalidInput):
    pass


class NotFound(RegflowError):
    exit_code = 3


class StepConflict(RegflowError):
    exit_code = 4


class CalendarUnavailable(RegflowError):
    exit_code = 5


class PlatformUnavailable(RegflowError):
    exit_code = 6


class AuditTampered(RegflowError):
    """`regflow audit verify` found a row altered, deleted or out of place."""

    exit_code = 7


class DrawMismatch(AuditTampered):
    """`regflow campaign verify-draw`: re-running the draw from its record does not give
    the recorded result (the record was altered)."""


class Forbidden(RegflowError):
    """The person acting does not hold the role the step names (data/people.yaml);
    the refusal is on the audit log."""

    exit_code = 8
