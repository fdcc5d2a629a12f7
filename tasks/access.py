"""Who may act, enforced: one check for the CLI and the UI's forms alike, and every
refusal on the audit log (`step.forbidden`), written before the refused change is
rolled back."""

from __future__ import annotations

import datetime as dt

from kernel.errors import Forbidden
from kernel.settings import get_settings
from rules.people import Person, describe, load_people
from storage import audit
from storage.db import session_scope


def require(
    session,
    who: str,
    *,
    roles: tuple[str, ...],
    authorities: tuple[str, ...],
    subject: str,
    action: str,
    now: dt.datetime,
    step: str | None = None,
) -> Person:
    """The person `who` (login or name) if they hold one of `roles` at one of
    `authorities`; otherwise the refusal is recorded and Forbidden raised. Call it
    before the caller's session has written anything: the refusal is committed in
    it (a session of our own would wait on the caller's lock)."""
    directory = load_people(get_settings().people_file)
    person = directory.allows(who, roles, authorities)
    if person is not None:
        return person
    audit.record(
        session,
        at=now,
        actor=(who or "?")[:100],
        action="step.forbidden",
        subject=subject,
        step=step,
        attempted=action,
        roles=list(roles),
        authorities=list(authorities),
    )
    session.commit()
    holders = [f"{p.name} ({p.login})" for p in directory.holders(roles, authorities)][:3]
    known = "" if directory.named(who) else f" ({who!r} is not in the people file)"
    raise Forbidden(
        f"{who!r} may not {action} of {subject}{known}: only the {describe(roles)} of "
        f"{', '.join(authorities)} may" + (f", e.g. {', '.join(holders)}" if holders else "")
    )


def asking(session, *, subject: str, step: str, ask: str) -> tuple[str, str]:
    """A step's prompt text, led by why its last answer was refused if one was (a rule
    broken, or not allowed), and its suspension key: a step refused n times waits
    under `<step>-again-<n>`, so a resumed run cannot take the refused input again."""
    refused = [
        e.detail.get("error") or f"{e.actor} may not answer it ({describe(tuple(e.detail.get('roles', [])))})"
        for e in audit.events_for(session, subject=subject)
        if e.action in ("step.refused", "step.forbidden") and e.detail.get("step") == step
    ]
    if not refused:
        return ask, step
    return f"**上次提交未被接受 / the last answer was refused:** {refused[-1]}\n\n{ask}", f"{step}-again-{len(refused)}"


def and_superiors(tree, code: str) -> tuple[str, ...]:
    """An authority and every one above it: where a head may approve what concerns it."""
    return (code, *(a.code for a in tree.chain_up(code)))


def require_head(session, by: str, tree, code: str, *, subject: str, action: str, now: dt.datetime) -> None:
    """Only the head of `code`, or of an authority above it, may: a roster, a register,
    a campaign are theirs to approve."""
    require(
        session, by, roles=("head",), authorities=and_superiors(tree, code), subject=subject, action=action, now=now
    )


def who_may(roles: tuple[str, ...], authorities: tuple[str, ...]) -> str:
    """A prompt's line on who may answer, naming a few of them."""
    try:
        holders = load_people(get_settings().people_file).holders(roles, authorities)
    except Exception:  # the prompt still goes out; answering will say what is wrong
        holders = []
    names = "、".join(f"{p.name}（{p.login}）" for p in holders[:4])
    return f"填写人 / Answered by: {describe(roles)}" + (f" — {names}" if names else "")


def refuse(number: str, step: str, error: str, *, by: str, now: dt.datetime) -> None:
    """A form answer from the UI broke a rule the form cannot check (a date in the
    future, too little paid): on record, and the step is asked again."""
    with session_scope() as session:
        audit.record(
            session, at=now, actor=(by or "ui")[:100], action="step.refused", subject=number, step=step, error=error
        )
