"""The emergency-response lifecycle's human steps, in order.

The flow walks these steps one by one (`following`); the CLI uses the same order to know which answer an
incident is waiting for, so "twice" and "out of order" have one definition.

    arrival -> initial-report -> progress-1, progress-2, ... (until "close")
            -> final-report -> review
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Form = Literal["arrival", "report", "progress", "review"]


@dataclass(frozen=True)
class StepSpec:
    name: str  # also the suspension key: deterministic per logical wait
    form: Form
    deadline: str  # the deadline this step meets
    title: str  # zh / en, for prompts and messages
    report_kind: str | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        """Who may answer it (rules/people.py): the team on site records its arrival,
        the duty desk reports, the head reviews."""
        return {"arrival": ("onsite",), "report": ("duty",), "progress": ("duty",), "review": ("head",)}[self.form]

    @property
    def answers(self) -> tuple[str, ...]:
        """What the CLI may answer it with (`report:<kind>`, `arrive`, `close`, `review`)."""
        return {"arrival": ("arrive",), "report": (f"report:{self.report_kind}",),
                "progress": ("report:progress", "close"), "review": ("review",)}[self.form]


ARRIVAL = StepSpec("arrival", "arrival", "arrival", "到达现场 / arrival on site")
INITIAL = StepSpec("initial-report", "report", "initial_report", "初报 / initial report", "initial")
FINAL = StepSpec("final-report", "report", "final_report", "终报 / final report", "final")
REVIEW = StepSpec("review", "review", "review", "事后评估 / post-incident review")


def progress(n: int) -> StepSpec:
    return StepSpec(f"progress-{n}", "progress", f"progress-{n}",
                    f"续报 {n} 或结束处置 / progress report {n} or end of handling", "progress")


def following(name: str, answer: dict[str, Any]) -> StepSpec | None:
    """The step after `name`, given its answer; None after the last one."""
    if name == ARRIVAL.name:
        return INITIAL
    if name == INITIAL.name:
        return progress(1)
    if name.startswith("progress-"):
        return FINAL if answer.get("action") == "close" else progress(int(name.removeprefix("progress-")) + 1)
    if name == FINAL.name:
        return REVIEW
    return None


def next_step(answered: dict[str, dict[str, Any]]) -> StepSpec | None:
    """The first step not yet answered, given answers by step name; None when done."""
    step: StepSpec | None = ARRIVAL
    while step is not None and step.name in answered:
        step = following(step.name, answered[step.name])
    return step


def step_named(name: str) -> StepSpec:
    if name.startswith("progress-"):
        return progress(int(name.removeprefix("progress-")))
    return {s.name: s for s in (ARRIVAL, INITIAL, FINAL, REVIEW)}[name]
