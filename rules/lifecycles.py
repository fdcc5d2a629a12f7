"""Every lifecycle regflow runs, by name: what the docs draw and the tests walk."""

from __future__ import annotations

from rules import cases
from rules.cases import CASE, COMPLAINT, LOOKBACK
from rules.credit import LISTING, PUBLICATION, REFERRAL
from rules.incidents import DEADLINE_LABELS, EMERGENCY
from rules.lifecycle import Lifecycle
from rules.risk import RECALL, RISK
from rules.samples import SAMPLE

_ALL = (EMERGENCY, CASE, COMPLAINT, LOOKBACK, SAMPLE, RISK, RECALL, PUBLICATION, LISTING, REFERRAL)
LIFECYCLES: dict[str, Lifecycle] = {lc.name: lc for lc in _ALL}


def label(deadline: str) -> str:
    """What a deadline is called, whatever its subject (`progress-3` -> 续报 3)."""
    if deadline in DEADLINE_LABELS:
        return DEADLINE_LABELS[deadline]
    if deadline.startswith("progress-"):
        return f"续报 {deadline.removeprefix('progress-')}"
    if deadline.startswith("action-"):
        return f"整改事项 {deadline.removeprefix('action-')}"
    return cases.label(deadline) or deadline


def markdown() -> str:
    """docs/lifecycles.md: each lifecycle drawn and tabled from its declaration
    (`python -m rules.lifecycles > docs/lifecycles.md`; a test keeps the file current)."""
    from rules.people import ROLES

    out = [
        "# Lifecycles",
        "",
        "Generated from the declarations (`rules/incidents.py`, `rules/cases.py`, `rules/samples.py`, "
        "`rules/risk.py`) by",
        "`python -m rules.lifecycles > docs/lifecycles.md`; `tests/test_lifecycles.py` fails when this",
        "file and the declarations disagree. Deadline names are those of `regflow … show`; their",
        "periods are in the plans (`data/plans/`) and the rule file (`data/rules/statutory.yaml`).",
        "A step that waits for nothing runs beside the steps before it (a line of its own): it may be",
        "answered whenever it is open, and the run takes the answer when its walk reaches it.",
        "",
    ]
    for lifecycle in LIFECYCLES.values():
        out += [
            f"## {lifecycle.title} (`{lifecycle.name}`)",
            "",
            "```mermaid",
            lifecycle.mermaid().rstrip(),
            "```",
            "",
            "| step | title | answered by | form | waits for | meets | opens | documents |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for step in lifecycle.steps:
            opens = ", ".join((*step.opens, *step.handler_opens))
            meets = ", ".join(m.format(name=f"{step.name}-n") for m in step.meets)
            waits = ", ".join(step.requires or ()) or ("nothing: a line of its own" if step.requires == () else "—")
            if step.requires is None and step.name != lifecycle.first:
                waits = "the step before"
            out.append(
                f"| `{step.name}`{'-n' if step.repeats else ''} | {step.title.format(n='n')} | "
                f"{ROLES[step.role]} | {step.form} | {waits} | {meets} | {opens} | "
                f"{', '.join(step.documents)} |"
            )
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
