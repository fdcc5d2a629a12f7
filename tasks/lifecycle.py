"""The lifecycle engine: one for every kind of subject.

A lifecycle is declared in the rules (`rules/lifecycle.py`); a kind of subject
(incidents, cases) tells the engine how to load one, build its `Context` and which
handlers do what a step's declaration does not say (`Kind`). The engine does the
rest, the same for all:

- `open_step`: mark a step as awaited (once), and say what to enter, why and by when;
- `answer`: refuse an answer twice, out of order or from the wrong person; validate
  it with the step's form; then, in one transaction with the answer, meet the step's
  deadlines, open the next ones, send its notice, run its handler, record the
  audit event;
- `consume`: the run has gone past a step: hand over its documents once.

Each is one transaction and idempotent by its own key (a step's name, an outbox
row's key), because a resumed flow runs again from the top.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from kernel.errors import InvalidInput, NotFound, StepConflict
from kernel.settings import get_settings
from rules.authorities import AuthorityTree, first_error
from rules.durations import Due
from rules.forms import form_class
from rules.lifecycle import Document, Lifecycle, Step
from storage import audit
from storage import deadlines as deadline_rows
from storage import steps as step_rows
from storage.authorities import Authority, load_tree
from storage.db import session_scope
from storage.deadlines import Deadline
from storage.incidents import Report, reports_for
from storage.subjects import Subject, run_for
from tasks import events
from tasks.access import and_superiors, asking, require, who_may
from tasks.deadlines import Cycle, resolve_late
from tasks.notify import queue
from tasks.render import local_time, render


@dataclass
class Context:
    """What every change to one subject needs, loaded once per transaction. Each kind
    says how a deadline's due time and reminder policy are found and who its
    recipient names (`desk`, `head`, `upward`, `listing`) are."""

    session: Session
    subject: Subject
    _tree: AuthorityTree | None = field(default=None, repr=False)

    @property
    def number(self) -> str:
        return self.subject.number

    @property
    def tree(self) -> AuthorityTree:
        if self._tree is None:
            self._tree = load_tree(self.session)
        return self._tree

    @property
    def authority(self) -> Authority:
        return self.session.get(Authority, self.subject.authority_code)

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        raise NotImplementedError

    def policy(self, code: str, ladder_from: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def recipients(self, names: tuple[str, ...]) -> list[str]:
        raise NotImplementedError

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return dict(subject=self.subject, authority=self.authority, **more)

    def require(
        self,
        by: str,
        action: str,
        *,
        now: dt.datetime,
        roles: tuple[str, ...],
        above: bool = False,
    ) -> None:
        """Only `roles` of the subject's authority (`above`: or of one above it) may act;
        a refusal is on the audit log."""
        code = self.subject.authority_code
        authorities = and_superiors(self.tree, code) if above else (code,)
        require(self.session, by, roles=roles, authorities=authorities, subject=self.number, action=action, now=now)

    def add(
        self,
        name: str,
        start: dt.datetime,
        *,
        rule: str | None = None,
        due: Due | None = None,
        authority: str | None = None,
        ladder_from: str | None = None,
    ) -> Deadline:
        """Open a deadline: from its rule (or the `due` given), owed by the subject's
        authority (or `authority`), reminded and escalated by the kind's policy."""
        due = due or self.due(name, start, rule)
        code = authority or self.subject.authority_code
        return deadline_rows.add_deadline(
            self.session,
            subject=self.number,
            name=name,
            due_at=due.at,
            rule=due.rule,
            now=start,
            authority=code,
            policy=self.policy(code, ladder_from),
        )

    def get(self, name: str) -> Deadline | None:
        return deadline_rows.get_deadline(self.session, subject=self.number, name=name)

    def close(self, name: str, now: dt.datetime, status: str = "met") -> Deadline | None:
        row = deadline_rows.close_deadline(self.session, subject=self.number, name=name, status=status, now=now)
        if row is not None and status == "met":
            resolve_late(self.session, deadline=row, now=now)
        return row

    def queue(self, *, key: str, tags: list[str], template: str, now: dt.datetime, **variables: Any) -> None:
        """A message from `templates/messages/<template>.j2` to each tag, once per key."""
        queue(
            self.session,
            number=self.number,
            key=key,
            tags=tags,
            template=template,
            now=now,
            **self.template_vars(**variables),
        )

    def notify(
        self,
        key: str,
        heading: tuple[str, str],
        *,
        by: str,
        now: dt.datetime,
        text: str = "",
        next_deadline: Deadline | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """A step's message (zh and en headings): what was done, by whom, and the
        deadline that runs next; to the subject's desk unless `tags` say otherwise."""
        zh, en = heading
        self.queue(
            key=key,
            tags=self.recipients(("desk",)) if tags is None else tags,
            template="step",
            now=now,
            heading=zh,
            heading_en=en,
            by=by,
            at=now,
            text=text,
            next_deadline=next_deadline,
        )

    def tell(
        self,
        given: Given,
        key: str,
        heading: tuple[str, str],
        *,
        text: str | None = None,
        next_deadline: Deadline | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """What a handler tells of an answer, signed by who gave it, with its text."""
        self.notify(
            key,
            heading,
            by=given.by,
            now=given.now,
            text=given.text if text is None else text,
            next_deadline=next_deadline,
            tags=tags,
        )

    def document(self, kind: str, *, step: str, by: str, now: dt.datetime, text: str = "", **variables: Any) -> Report:
        """Render a document its lifecycle declares and file it under the step that made it."""
        declared = self.subject.lifecycle.documents[kind]
        document = render(
            f"documents/{declared.template}",
            **self.template_vars(document=declared, by=by, at=now, text=text, **variables),
        )
        row = Report(
            subject=self.number, kind=kind, step=step, author=by, text=text, document=document, submitted_at=now
        )
        self.session.add(row)
        self.session.flush()
        return row


@dataclass
class Given:
    """One answer as a handler sees it: validated, signed, with the deadlines the
    engine met (`met`, the first of the step's) and opened for the next step."""

    step: Step
    form: BaseModel
    data: dict[str, Any]
    by: str
    now: dt.datetime
    met: Deadline | None
    opened: list[Deadline]
    next: Step | None

    @property
    def text(self) -> str:
        return self.data.get("text", "")


Handler = Callable[[Context, Given], "Cycle | None"]


class Kind(Protocol):
    """How the engine reaches one kind of subject."""

    handlers: dict[str, Handler]  # by step name, in lifecycle order

    def load(self, session: Session, number: str) -> Subject: ...

    def context(self, session: Session, subject: Subject) -> Context: ...

    def lifecycle(self, subject: Subject, step: str | None = None) -> Lifecycle: ...


@dataclass
class StepState:
    number: str
    name: str
    status: str
    answer: dict[str, Any] | None
    prompt: str
    flow_run_id: uuid.UUID | None
    pause_key: str = ""  # the suspension key; a step whose form answer was refused waits again under a new one


@dataclass
class Answered:
    number: str
    step: str
    answer: dict[str, Any]
    flow_run_id: uuid.UUID | None
    newly: bool  # False when this call found the step already answered


def open_step(kind: Kind, number: str, name: str, *, now: dt.datetime) -> StepState:
    """Mark a step as awaited (once) and say what to enter, why and by when."""
    with session_scope() as session:
        subject = kind.load(session, number)
        lifecycle = kind.lifecycle(subject, name)
        spec = lifecycle.step(name)
        row = step_rows.get_step(session, subject=subject.number, name=spec.name)
        if row is None:
            row = step_rows.open_step(session, subject=subject.number, name=spec.name, now=now)
            audit.record(session, at=now, actor="regflow", action="step.opened", subject=subject.number, step=spec.name)
        if row.status != "answered":
            _set_stage(session, subject, spec.base)
        ctx = kind.context(session, subject)
        deadline = ctx.get(spec.deadline or lifecycle.clock or "")
        ask = who_may((spec.role,), acting(ctx.tree, subject.authority_code, spec))
        ask, pause_key = asking(
            session, subject=subject.number, step=spec.name, ask=f"{spec.ask}\n\n{ask}" if spec.ask else ask
        )
        prompt = render(
            "prompts/step.md.j2",
            **ctx.template_vars(
                step=spec, deadline=deadline, now=now, ask=ask, cli=spec.command(lifecycle, subject.number)
            ),
        )
        return StepState(
            subject.number, spec.name, row.status, row.answer, prompt, run_for(subject, spec.name), pause_key=pause_key
        )


def acting(tree: AuthorityTree, code: str, spec: Step) -> tuple[str, ...]:
    """The authority whose people answer a step: the subject's own, or for a step
    answered `above`, the one above a county's or a city's."""
    if spec.above and tree.get(code).tier.value in ("county", "city"):
        return (tree.chain_up(code)[0].code,)
    return (code,)


def _set_stage(session: Session, subject: Subject, stage: str) -> None:
    if subject.is_open and subject.stage != stage:
        subject.stage = stage
        session.add(subject)


def answer(
    kind: Kind,
    number: str,
    *,
    step: str,
    answer: dict[str, Any],
    source: str,
    now: dt.datetime,
    from_flow: bool = False,
) -> Answered:
    """Record a step's answer and everything that follows from it.

    From the CLI, `step` is what the person means to answer: it must be the step the
    subject awaits, else StepConflict says what it awaits. From the flow, the step it
    was suspended on; an earlier answer (from the CLI) simply wins.
    """
    with session_scope() as session:
        subject = kind.load(session, number)
        lifecycle = kind.lifecycle(subject, step)
        spec = lifecycle.step(step)
        done = {r.name: r for r in step_rows.steps_for(session, subject=subject.number) if r.status == "answered"}
        if spec.name in done:
            row = done[spec.name]
            if from_flow:
                return Answered(subject.number, spec.name, row.answer or {}, run_for(subject, spec.name), False)
            raise StepConflict(
                f"{spec.title} of {subject.number} was already recorded at "
                f"{local_time(row.answered_at)} by {row.answered_by}"
            )
        _check_awaited(session, subject, lifecycle, spec, done)
        form = validate(spec.form, answer)
        data = form.recorded()
        by = form.signed_by
        if source != "drill":  # a drill's simulated responders are the drill itself, on record as such
            require(
                session,
                by,
                roles=(spec.role,),
                authorities=acting(load_tree(session), subject.authority_code, spec),
                subject=subject.number,
                action=f"answer {spec.title}",
                step=spec.name,
                now=now,
            )
        row = step_rows.open_step(session, subject=subject.number, name=spec.name, now=now)
        if not step_rows.claim_answer(session, step=row, answer=data, by=by, source=source, now=now):
            raise StepConflict(f"{spec.title} of {subject.number} was already recorded")
        ctx = kind.context(session, subject)
        cycle = _apply(kind, ctx, lifecycle, Given(spec, form, data, by, now, None, [], None))
        audit.record(
            session, at=now, actor=by, action="step.answered", subject=subject.number, step=spec.name, source=source
        )
        result = Answered(subject.number, spec.name, data, run_for(subject, spec.name), newly=True)
    events.emit_all(cycle.emitted if cycle else [])
    return result


def _check_awaited(session: Session, subject: Subject, lifecycle: Lifecycle, spec: Step, done: dict) -> None:
    """The step must be open: next on its line, whatever the other lines await."""
    awaited = lifecycle.open_steps({n: r.answer or {} for n, r in done.items()})
    if lifecycle.answered_once_opened and step_rows.get_step(session, subject=subject.number, name=spec.name) is None:
        awaited = []  # not opened yet: its run has not started
    if spec.name not in {s.name for s in awaited}:
        raise StepConflict(f"{subject.number} is {awaiting(subject, awaited)}, not {spec.title}")


def awaited(session: Session, subject: Subject) -> list[str]:
    """The steps open on the subject's lines now, by name."""
    if not subject.is_open:
        return []
    return [s.name for s in subject.lifecycle.open_steps(step_rows.answers(session, subject=subject.number))]


def to_visit(kind: Kind, number: str, lifecycle: Lifecycle) -> list[str]:
    """What a run walking `lifecycle` has still to go past, in order: steps answered
    while it waited elsewhere (from the CLI, on another line), then the open ones. The
    first open one is where it suspends; a run may walk a lifecycle that is not its
    subject's own (a closed case's look-back review), so the walk alone decides."""
    with session_scope() as session:
        subject = kind.load(session, number)
        rows = step_rows.steps_for(session, subject=subject.number)
        answered = {r.name: r.answer or {} for r in rows if r.status == "answered"}
        passed = [r for r in rows if r.status == "answered" and r.consumed_at is None and _declares(lifecycle, r.name)]
        passed.sort(key=lambda r: r.answered_at)
        if not subject.is_open and lifecycle.name == subject.lifecycle.name:
            return [r.name for r in passed]  # ended outside its run (a publication withdrawn): nothing more to wait for
        return [r.name for r in passed] + [s.name for s in lifecycle.open_steps(answered)]


def _declares(lifecycle: Lifecycle, name: str) -> bool:
    try:
        lifecycle.step(name)
    except InvalidInput:
        return False
    return True


def awaiting(subject: Subject, awaited: list[Step]) -> str:
    if awaited:
        return "awaiting " + " and ".join(s.title for s in awaited)
    return "closed" if not subject.is_open else "not awaiting any step"


def validate(form: str, answer: dict[str, Any]) -> Any:
    """The answer as its form, or InvalidInput with the first problem in one line."""
    try:
        return form_class(form).model_validate(answer)
    except ValidationError as exc:
        raise InvalidInput(first_error(exc)) from exc
    except ValueError as exc:
        raise InvalidInput(str(exc).splitlines()[0]) from exc


def _apply(kind: Kind, ctx: Context, lifecycle: Lifecycle, given: Given) -> Cycle | None:
    """What follows from an answer, in this order: the step's deadlines met (or
    cancelled), the next step's opened, the declared notice, then the handler."""
    spec, now = given.step, given.now
    status = "cancelled" if spec.cancels(given.data) else "met"
    met = [ctx.close(name, now, status) for name in spec.meets]
    given.met = met[0] if met else None
    given.next = lifecycle.following(spec.name, given.data, step_rows.answers(ctx.session, subject=ctx.number))
    if given.next is not None:
        start = _start(spec, given)
        for name in (*spec.opens, *given.next.meets):
            if name not in spec.handler_opens and ctx.get(name) is None:
                given.opened.append(ctx.add(name, start if name in given.next.meets else now))
    notice = spec.notice_for(given.data)
    if notice is not None:
        fields = {**given.data, "n": spec.number}
        ctx.notify(
            spec.name,
            (notice.zh.format(**fields), notice.en.format(**fields)),
            by=given.by,
            now=now,
            text=given.data.get(notice.text, "") if notice.text else "",
            next_deadline=given.opened[0] if given.opened else None,
            tags=ctx.recipients(notice.to),
        )
    handler = kind.handlers.get(spec.base)
    cycle = handler(ctx, given) if handler is not None else None
    if given.next is not None:
        _set_stage(ctx.session, ctx.subject, given.next.base)
    return cycle


def _start(spec: Step, given: Given) -> dt.datetime:
    """When the next step's deadlines start counting: the day the form names (not
    counted itself, Art. 80), else the answer's time."""
    if spec.starts_from is None:
        return given.now
    return not_future(getattr(given.form, spec.starts_from), spec.starts_from, given.now)


def not_future(day: dt.date, name: str, now: dt.datetime) -> dt.datetime:
    """A calendar date given on a form, refused if it is after today (local time)."""
    import pendulum

    from rules.cases import at_noon

    tz = get_settings().timezone
    if day > pendulum.instance(now).in_timezone(tz).date():
        raise InvalidInput(f"{name}: {day} is in the future")
    return at_noon(day, tz)


def consume(kind: Kind, number: str, name: str, *, now: dt.datetime, mark: bool = True) -> list[Passed]:
    """The flow has gone past a step: mark it, and return its documents the first
    time only (so artifacts are published once however often the flow re-runs).
    Without `mark`, read them to publish first, so a crash in between loses none."""
    with session_scope() as session:
        subject = kind.load(session, number)
        spec = kind.lifecycle(subject, name).step(name)
        row = step_rows.get_step(session, subject=subject.number, name=name)
        if row is None or row.consumed_at is not None:
            return []
        if mark:
            row.consumed_at = now
            session.add(row)
        # Its own documents, and those it drafts under a name of their own (the release).
        return [
            Passed(r.step, r.document, subject.lifecycle.documents[r.kind])
            for r in reports_for(session, subject=subject.number)
            if r.step in (name, *spec.documents)
        ]


@dataclass(frozen=True)
class Passed:
    """A document of a step the run has gone past: where it was filed, its text, what it is."""

    step: str
    markdown: str
    declared: Document


def load(session: Session, number: str, *, getter: Callable[..., Subject | None], what: str) -> Subject:
    subject = getter(session, number=number)
    if subject is None:
        raise NotFound(f"no {what} {number.strip()!r}")
    return subject


def pending_answers(session: Session, *, older_than: dt.datetime) -> list[tuple[str, str, dict, uuid.UUID]]:
    """Answers recorded while their run was not yet suspended: (number, step, answer,
    run), for every kind of subject; the watcher hands them over."""
    from storage.subjects import subject_for

    found = []
    for row in step_rows.unconsumed_answers(session, older_than=older_than):
        subject = subject_for(session, row.subject)
        run_id = run_for(subject, row.name) if subject is not None else None
        if run_id is not None:
            found.append((subject.number, row.name, row.answer or {}, run_id))
    return found
