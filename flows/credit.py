"""Credit supervision: one `penalty-publication` run per publication, one
`serious-listing` run per listing and one `credit-referral` run per referral, each
walking its lifecycle (`rules/credit.py`) with `flows.steps`, so every human step waits
in the UI with its typed form as it does from the CLI. Once published or listed, the
end of the period is a `credit-expiry` run scheduled for that moment, visible among
upcoming runs, which takes it off the public page."""

from __future__ import annotations

from prefect import flow, task

from flows.params import Param
from flows.steps import walk
from storage.db import utcnow
from tasks.enforcement import start_linked_runs
from tasks.prefect_tasks import RETRY, deliver_notifications, keep_alive, subject_of_run


@task(name="schedule-end", **RETRY)
def schedule_end(number: str) -> str | None:
    """Once published or listed: its end as a scheduled run (once; None if not current)."""
    from tasks.credit import end_of
    from tasks.runs import schedule_end_run

    found = end_of(number)
    if found is None:
        return None
    ends, scheduled = found
    return str(scheduled or schedule_end_run(number, ends))


def _walk(number: str, *, ends: bool) -> str:
    from storage.cases import get_case
    from storage.db import session_scope

    keep_alive()
    number = subject_of_run(number, None)
    with session_scope() as session:
        lifecycle = get_case(session, number=number).lifecycle
    walk(number, lifecycle, after=start_linked_runs)
    if ends:
        schedule_end(number)
    deliver_notifications(number)
    return number


@flow(name="penalty-publication", log_prints=True)
def penalty_publication(
    number: str = Param(title="公示 Publication", description="处罚决定生成 / opened by a penalty decision"),
) -> str:
    return _walk(number, ends=True)


@flow(name="serious-listing", log_prints=True)
def serious_listing(
    number: str = Param(title="列入 Listing", description="regflow serious-list propose 生成 / opened by a proposal"),
) -> str:
    return _walk(number, ends=True)


@flow(name="credit-referral", log_prints=True)
def credit_referral(
    number: str = Param(title="推送 Referral", description="公示重大处罚或列入名单时生成 / opened by either"),
) -> str:
    return _walk(number, ends=False)


@task(name="end-period", **RETRY)
def end_period(number: str) -> str:
    from tasks import credit
    from tasks.runs import release_runs

    outcome = credit.expire(number, now=utcnow())
    release_runs(credit.ended_with(number))  # its referrals' runs, if suspended, walk on to their end
    return outcome


@flow(name="credit-expiry", log_prints=True)
def credit_expiry(
    number: str = Param(title="公示或列入 Publication or listing", description="期满时由 regflow 排定 / scheduled"),
) -> str:
    """The period has run: off the public page, on record as ended."""
    outcome = end_period(number)
    deliver_notifications(number)
    print(outcome)
    return outcome
