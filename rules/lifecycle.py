"""What a lifecycle is: a declaration of human steps, read by the engine
(`tasks/lifecycle.py`), the flows, the CLI, the prompts, the docs and the tests.

A step says who answers it and with which form, which deadlines its answer meets,
which it opens, what it renders, whom it tells and where it leads, by the answer.
Where a step does more than that, a handler keyed by its name does the rest; the
engine is the same for every lifecycle. The declarations themselves live beside
their domain rules: `rules/incidents.py` (emergency response) and `rules/cases.py`
(enforcement case, complaint, look-back review); `rules/lifecycles.py` lists them.

Pure: no Prefect, no database; the walk over a lifecycle is tested in milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Union

from kernel.errors import InvalidInput

_INSTANCE = re.compile(r"^(?P<base>.+)-(?P<n>\d+)$")


@dataclass(frozen=True)
class Branch:
    """Where an answer leads, by the value of one of its fields; `default` for any
    value not listed (or the field absent). Targets are step names, None for the end,
    or a further Branch."""

    on: str
    to: dict[Any, Target]
    default: Target = None

    def pick(self, answer: dict[str, Any]) -> str | None:
        target = self.to.get(answer.get(self.on), self.default)
        return target.pick(answer) if isinstance(target, Branch) else target

    def targets(self) -> Iterator[str | None]:
        for target in (*self.to.values(), self.default):
            yield from target.targets() if isinstance(target, Branch) else (target,)


Target = Union[str, Branch, None]


@dataclass(frozen=True)
class Notice:
    """A message an answer sends: its heading (zh, en; `{n}` is a repeated step's
    number), whom to (names the subject's context resolves: `desk`, `head`,
    `upward`, `listing`), and the form field whose text it carries."""

    zh: str
    en: str
    to: tuple[str, ...] = ("desk",)
    text: str = "text"


@dataclass(frozen=True)
class Document:
    """A document a step renders: its title (zh, en) and its template under
    templates/documents/."""

    zh: str
    en: str
    template: str


@dataclass(frozen=True)
class Step:
    name: str  # also the suspension key: deterministic per logical wait
    title: str  # zh / en
    role: str  # the role key of rules/people.py that answers it
    form: str  # the key of its form in rules.forms
    meets: tuple[str, ...] = ()  # deadlines its answer meets; the first is the one its prompt shows
    # A value of one answer field that cancels `meets` instead (a progress report no
    # longer due because handling ended).
    cancels_when: tuple[str, Any] | None = None
    # Deadlines opened when the answer leads on, besides those the next step meets
    # (which the engine opens when absent).
    opens: tuple[str, ...] = ()
    # Deadlines of the next step its handler opens itself (a due time of its own).
    handler_opens: tuple[str, ...] = ()
    # The form's date field the next deadlines count from (the day a notice was
    # served), instead of the moment of the answer.
    starts_from: str | None = None
    documents: tuple[str, ...] = ()  # document kinds its answer may render (templates/documents)
    then: Target = None  # where it leads
    # The steps that must be answered before this one may be: by default the step
    # before it on the walk; `()` makes it a line of its own beside that one (an
    # initial report does not wait for the team's arrival).
    requires: tuple[str, ...] | None = None
    # What the answer tells: one notice, or one by the value of a field (`notice_on`,
    # else the one `then` branches on). A value left out is told by the step's handler
    # (its text depends on what the handler did).
    notice: Notice | dict[Any, Notice] | None = None
    notice_on: str | None = None
    repeats: bool = False  # a numbered series: progress-1, progress-2, ...
    # A series that repeats until this step (on another line) is answered, then leads
    # to `then`: progress reports until handling has ended, releases until the review.
    until: str | None = None
    # Answered at the authority above the subject's where that is a county's or a
    # city's (a listing needs the consent of the bureau above, Order 44).
    above: bool = False
    beside: str | None = None  # off the main path: the main-path step it branches from (for progress)
    verbs: tuple[str, ...] = ()  # the CLI's words for answering it, where they are not the step's name
    ask: str = ""  # what to enter, for its prompt (zh, then en)
    cli: str = ""  # its CLI command for the prompt, if not the lifecycle's ({number}, {step})
    number: int = 0  # for a repeated step, which one

    def notice_for(self, answer: dict[str, Any]) -> Notice | None:
        if not isinstance(self.notice, dict):
            return self.notice
        on = self.notice_on or (self.then.on if isinstance(self.then, Branch) else None)
        return self.notice.get(answer.get(on)) if on else None

    def cancels(self, answer: dict[str, Any]) -> bool:
        return self.cancels_when is not None and answer.get(self.cancels_when[0]) == self.cancels_when[1]

    def command(self, lifecycle: Lifecycle, number: str) -> str:
        return (self.cli or lifecycle.cli).format(number=number, step=self.name)

    @property
    def base(self) -> str:
        """The declared step this is (`progress` for `progress-3`): its stage, its handler."""
        return self.name.rsplit("-", 1)[0] if self.number else self.name

    @property
    def deadline(self) -> str | None:
        """The deadline its prompt shows (the first it meets)."""
        return self.meets[0] if self.meets else None

    def targets(self) -> tuple[str | None, ...]:
        own = (self.name,) if self.until else ()  # a series leads to itself until it ends
        return own + (tuple(self.then.targets()) if isinstance(self.then, Branch) else (self.then,))


@dataclass(frozen=True)
class Lifecycle:
    """A lifecycle's steps, in the order a reader of the statute expects them."""

    name: str  # emergency, case, complaint, lookback
    title: str
    first: str
    steps: tuple[Step, ...]
    # The first steps of further lines that run beside the one from `first`, each on
    # its own (an incident's reporting and information-release lines beside on-site work).
    lines: tuple[str, ...] = ()
    documents: dict[str, Document] = field(default_factory=dict)  # by kind
    cli: str = ""  # how a step is answered from the CLI ({number}, {step})
    # The deadline a prompt shows for a step that meets none of its own (the case clock).
    clock: str | None = None
    # True where a step may be answered only once its run has opened it (a look-back
    # review is scheduled months ahead: nothing is awaited before its run starts).
    answered_once_opened: bool = False
    by_name: dict[str, Step] = field(init=False, repr=False, compare=False)
    _order: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {s.name: s for s in self.steps})
        object.__setattr__(self, "_order", {s.name: i for i, s in enumerate(self.steps)})

    def step(self, name: str) -> Step:
        """The step by its name; `progress-3` is the third of the repeated `progress`."""
        found = self.by_name.get(name)
        if found is not None and not found.repeats:
            return found
        match = _INSTANCE.match(name)
        base = self.by_name.get(match["base"]) if match else None
        if base is None or not base.repeats:
            raise InvalidInput(f"unknown step {name!r}; steps: {', '.join(self.by_name)}")
        return self._instance(base, int(match["n"]))

    @staticmethod
    def _instance(base: Step, n: int) -> Step:
        name = f"{base.name}-{n}"
        return replace(
            base,
            name=name,
            title=base.title.format(n=n),
            number=n,
            meets=tuple(m.format(name=name) for m in base.meets),
        )

    def following(
        self, name: str, answer: dict[str, Any], answered: dict[str, dict[str, Any]] | None = None
    ) -> Step | None:
        """The step after `name` given its answer (and, where a series may have ended,
        the answers given so far); None when its line has ended."""
        current = self.step(name)
        answered = answered or {}
        if current.until is not None and current.until not in answered:
            target: str | None = current.base  # the series goes on
        else:
            target = current.then.pick(answer) if isinstance(current.then, Branch) else current.then
        while target is not None:
            nxt = self.by_name[target]
            if not nxt.repeats:
                return nxt
            if target != current.base and nxt.until is not None and nxt.until in answered:
                target = nxt.then if not isinstance(nxt.then, Branch) else nxt.then.pick({})
                continue  # a series that ended before it began
            return self._instance(nxt, current.number + 1 if target == current.base else 1)
        return None

    def next_step(self, answered: dict[str, dict[str, Any]]) -> Step | None:
        """The first step open, given answers by step name; None when done."""
        open_now = self.open_steps(answered)
        return open_now[0] if open_now else None

    def open_steps(self, answered: dict[str, dict[str, Any]]) -> list[Step]:
        """Every step that may be answered now, in declaration order: on each line, the
        first unanswered step and those beyond it that do not need it (`requires`), as
        far as the walk can see without an answer (a branch needs one)."""
        found: dict[str, Step] = {}
        for first in (self.first, *self.lines):
            for step in self._walk(self._start(first), answered):
                found.setdefault(step.name, step)
        return sorted(found.values(), key=lambda s: self._order[s.base])

    def _walk(self, step: Step | None, answered: dict[str, dict[str, Any]]) -> list[Step]:
        before: Step | None = None
        found: list[Step] = []
        while step is not None:
            if step.name in answered:
                before, step = step, self.following(step.name, answered[step.name], answered)
                continue
            if step.until is not None and step.until in answered:  # the series ended before it began
                step = self._target(step.then if not isinstance(step.then, Branch) else step.then.pick({}))
                continue
            needs = step.requires if step.requires is not None else ((before.name,) if before else ())
            if not all(name in answered for name in needs):
                break
            found.append(step)
            if isinstance(step.then, Branch) or step.until is not None:
                break  # what follows depends on this answer
            before, step = step, self.following(step.name, {}, answered)
        return found

    def first_step(self) -> Step:
        return self._start(self.first)

    def _start(self, name: str) -> Step:
        first = self.by_name[name]
        return self._instance(first, 1) if first.repeats else first

    def _target(self, name: str | None) -> Step | None:
        return None if name is None else self._start(name)

    def progress(self, awaiting: Step | None) -> float:
        """Percent of the main path passed while `awaiting` is awaited (the subject's
        start counts as the first stretch; a side step stands where it branched off)."""
        path = [s.name for s in self.steps if s.beside is None]
        if awaiting is None:
            return 100.0
        base = self.by_name[awaiting.base]
        passed = 1 + path.index(base.beside or base.name)
        return round(100 * passed / (len(path) + 1), 1)

    def reachable(self) -> set[str]:
        """Names of the declared steps some path reaches from the first."""
        seen, todo = set(), [self.first, *self.lines]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo += [t for t in self.by_name[name].targets() if t is not None]
        return seen

    def mermaid(self) -> str:
        """The lifecycle as a Mermaid flowchart (docs/lifecycles.md)."""
        lines = ["flowchart TD"]
        for step in self.steps:
            title = step.title.format(n="n")
            lines.append(f'  {_node(step.name)}["{title}<br/><small>{step.role}</small>"]')
        lines.append("  end_((end))")
        for step in self.steps:
            if step.until:
                lines.append(f"  {_node(step.name)} -->|until {step.until}| {_node(step.name)}")
            for value, target in _edges(step.then):
                label = f"|{value.strip()}|" if value is not None else ""
                lines.append(f"  {_node(step.name)} -->{label} {_node(target) if target else 'end_'}")
        return "\n".join(lines) + "\n"


def _node(name: str) -> str:
    return name.replace("-", "_")


def _edges(then: Target, prefix: str = "") -> Iterator[tuple[str | None, str | None]]:
    if not isinstance(then, Branch):
        yield (prefix or None), then
        return
    for value, target in then.to.items():
        yield from _edges(target, f"{prefix}{then.on}={value} ")
    yield from _edges(then.default, f"{prefix}{then.on}: otherwise ")
