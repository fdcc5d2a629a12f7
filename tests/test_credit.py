"""Credit supervision: a penalty published within 20 working days across the 2026
holidays (or pushed to the registering province within 10); a revoked decision
withdrawn; a publication ended by its scheduled end; an early end refused where the
rules forbid it and granted where they allow it; a listing from proposal through the
superior's approval, notice, decision and publication to removal; a referral whose
feedback is late escalated; a person's identity number never in the page, the feeds,
the messages, the audit log or the logs; hostile names shown as text. The rules and
storage with the engine, without Prefect; one platform test walks the runs."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zlib

import pendulum
import pytest
import sqlalchemy as sa

from kernel.errors import Forbidden, InvalidInput, StepConflict
from kernel.settings import get_settings
from rules.cases import validate_lead
from rules.registers import uscc_check_character
from storage.audit import AuditEvent
from storage.cases import get_case
from storage.credit import Listing, Publication, by_number
from storage.db import session_scope
from storage.deadlines import deadlines_for
from storage.escalations import list_escalations
from storage.notifications import Notification
from tasks import cases, credit
from tasks.deadlines import send_reminders
from tests.conftest import cli, on_postgresql

TZ = "Asia/Shanghai"
PERSON_ID = "330106198805201237"  # a valid number (GB 11643 check character), used as personal data
HOSTILE = '<script>alert("x")</script>=HYPERLINK("http://evil")'


def at(text: str):
    return pendulum.parse(text, tz=TZ).in_timezone("UTC")


def local(value) -> str:
    return pendulum.instance(value).in_timezone(TZ).format("YYYY-MM-DD HH:mm:ss")


def uscc(seed: str) -> str:
    body = "91330106" + str(zlib.crc32(seed.encode())).rjust(9, "0")[-9:]
    return body + uscc_check_character(body)


def decided_case(
    decided: str, *, authority: str = "330106", party: str = "某商贸有限公司", decide: bool = True, **decision
) -> str:
    """A case carried through its steps to a penalty decision at `decided` (local time),
    or (`decide=False`) to the step before it."""
    start = pendulum.parse(decided, tz=TZ).subtract(days=30)
    data = dict(
        kind="case", title=f"销售不合格头盔 {uuid.uuid4().hex[:6]}", party=party, source="report", authority=authority
    )
    number = cases.receive(validate_lead(data, now=start.in_timezone("UTC")), now=start.in_timezone("UTC")).number
    steps = [
        ("filing", dict(decision="file"), 1),
        ("investigation", dict(finding="penalty"), 5),
        ("legal-review", dict(opinion="agree"), 8),
        (
            "pre-penalty",
            dict(fine=str(decision.get("fine") or "5000"), served_on=start.add(days=9).date().isoformat()),
            9,
        ),
        ("party-response", dict(response="waived"), 12),
    ]
    for name, fields, day in steps:
        when = start.add(days=day).in_timezone("UTC")
        cases.answer(number, answer={"by": "张三", **fields}, source="cli", step=name, now=when)
    if decide:
        cases.answer(
            number,
            answer={"by": "赵六", "outcome": "penalty", **decision},
            source="cli",
            step="decision",
            now=at(decided),
        )
    return number


def publication_of(case_number: str) -> str:
    with session_scope() as session:
        return get_case(session, number=case_number).facts["publication"]


def due(number: str) -> dict[str, tuple[str, str]]:
    with session_scope() as session:
        return {d.name: (local(d.due_at), d.status) for d in deadlines_for(session, subject=number)}


def row(table, number: str):
    with session_scope() as session:
        return by_number(session, table, number)


def public(name: str) -> str:
    return (get_settings().home / "public" / "credit" / name).read_text(encoding="utf-8")


def publish(number: str, when: str, by: str = "李四", **more) -> None:
    credit.answer(number, step="publication", answer={"by": by, **more}, source="cli", now=at(when))


def test_published_within_20_working_days_across_the_national_day_holidays(own_database):
    # Decided Fri 9-25. 20 WD, the day itself not counted: 9-28, 29, 30 (3); holidays
    # 10-1..7; 10-8, 9, Sat 10-10 make-up (6); 10-12..16 (11); 10-19..23 (16); 10-26..29 (20).
    case = decided_case("2026-09-25 10:00", fine="150000", party_id=uscc("pubA"))
    number = publication_of(case)
    assert due(number)["publication"] == ("2026-10-29 23:59:59", "open")
    with session_scope() as session:
        decision = [r for r in session.exec(sa.select(Notification)).scalars() if r.subject == number]
        assert decision, "the desk is told a publication is due"
    publish(number, "2026-10-20 10:00")
    pub = row(Publication, number)
    # A fine of 150,000 to an organisation is not small (the line is 100,000): three years,
    # to the day (a holiday does not move the end of a publication period).
    assert (pub.state, pub.period, local(pub.ends_at)) == ("published", "36mo", "2029-10-20 23:59:59")
    assert due(number)["publication"][1] == "met"
    feed = json.loads(public("index.json"))
    assert [p["number"] for p in feed["publications"]] == [number]
    assert feed["publications"][0]["uscc"] == uscc("pubA")


def test_a_party_in_another_province_is_pushed_within_10_working_days(own_database):
    case = decided_case("2026-09-25 10:00", fine="5000", registered_with="320102")
    number = publication_of(case)
    # 10 WD from 9-25: 9-28, 29, 30, 10-8, 9, Sat 10-10, 12, 13, 14, 15.
    assert due(number)["publication"] == ("2026-10-15 23:59:59", "open")
    # The decision did not give the party's code: publishing asks for it.
    with pytest.raises(InvalidInput, match="--uscc"):
        publish(number, "2026-10-09 10:00")
    publish(number, "2026-10-09 10:00", uscc=uscc("js1"))
    with session_scope() as session:
        tags = {n.tag for n in session.exec(sa.select(Notification)).scalars() if n.subject == number}
    assert {"320102.duty", "320102.head"} <= tags
    # A small fine (5,000 < 100,000 for an organisation): three months from publication.
    assert local(row(Publication, number).ends_at) == "2027-01-09 23:59:59"


def test_a_warning_alone_is_not_published_and_a_revoked_decision_is_withdrawn(own_database):
    warned = decided_case("2026-09-10 10:00", measures=["warning"])
    with session_scope() as session:
        assert "publication" not in get_case(session, number=warned).facts
    case = decided_case("2026-09-10 10:00", fine="200000", party_id=uscc("pubW"))
    number = publication_of(case)
    publish(number, "2026-09-11 10:00")
    assert number in public("index.html")
    with pytest.raises(InvalidInput, match="reason"):
        credit.withdraw(
            number,
            reason="bored",
            fell_on=at("2026-09-20 10:00").date(),
            by="李四",
            text="",
            now=at("2026-09-21 10:00"),
        )
    credit.withdraw(
        number,
        reason="revoked",
        fell_on=pendulum.date(2026, 9, 18),
        by="李四",
        text="复议撤销",
        now=at("2026-09-21 10:00"),
    )
    pub = row(Publication, number)
    assert (pub.state, pub.end_reason) == ("withdrawn", "revoked")
    # 3 WD from Fri 9-18: Sun 9-20 (a make-up working day), 9-21, 22 — withdrawn on 9-21, in time.
    assert due(number)["publication-withdrawal"] == ("2026-09-22 23:59:59", "met")
    assert number not in public("index.html") and number not in public("publications.csv")
    with pytest.raises(StepConflict, match="withdrawn"):
        credit.withdraw(
            number, reason="revoked", fell_on=pendulum.date(2026, 9, 18), by="李四", text="", now=at("2026-09-22 10:00")
        )


def test_early_end_refused_where_forbidden_granted_where_allowed_and_the_period_ends_by_itself(own_database):
    # A licence revoked: Order 45 Art. 14 para. 3 forbids an early end.
    barred = publication_of(
        decided_case("2026-03-02 10:00", fine="80000", measures=["fine", "revoke_licence"], party_id=uscc("pubB"))
    )
    publish(barred, "2026-03-03 10:00")
    with pytest.raises(InvalidInput, match="第十四条第三款：吊销许可证件"):
        credit.apply_end(barred, by="李四", text="", now=at("2026-11-01 10:00"))
    with session_scope() as session:
        refused = (
            session.exec(
                sa.select(AuditEvent).where(
                    AuditEvent.action == "publication.early_end.refused", AuditEvent.subject == barred
                )
            )
            .scalars()
            .all()
        )
    assert refused, "a refusal is on record"
    # A 300,000 fine: may apply after six months of publication, in food after a year.
    allowed = publication_of(decided_case("2026-03-02 10:00", fine="300000", party_id=uscc("pubC")))
    publish(allowed, "2026-03-03 10:00")
    with pytest.raises(InvalidInput, match="2026-09-03 之后方可申请"):
        credit.apply_end(allowed, by="李四", text="", now=at("2026-08-01 10:00"))
    with pytest.raises(Forbidden):
        credit.apply_end(allowed, by="路人甲", text="", now=at("2026-09-10 10:00"))
    review = credit.apply_end(allowed, by="李四", text="已履行、已消除影响", now=at("2026-09-10 10:00"))
    assert "本局设定" in review.rule
    with pytest.raises(Forbidden):
        credit.end_early(allowed, grant=True, by="路人甲", text="", now=at("2026-09-15 10:00"))
    credit.end_early(allowed, grant=True, by="赵六", text="核实符合条件", now=at("2026-09-15 10:00"))
    assert (row(Publication, allowed).state, row(Publication, allowed).end_reason) == ("ended", "early")
    assert allowed not in public("index.html") and barred in public("index.html")
    # The short period (a small fine) ends by itself: the scheduled end, early, ends nothing.
    small = publication_of(decided_case("2026-03-02 10:00", fine="3000", party_id=uscc("pubD")))
    publish(small, "2026-03-03 10:00")
    assert credit.expire(small, now=at("2026-05-01 10:00")).endswith("ends at 2026-06-03 23:59")
    assert credit.expire(small, now=at("2026-06-04 00:00")) == f"{small} ended"
    assert credit.expire(small, now=at("2026-06-05 00:00")) == f"{small} is ended"
    assert small not in public("index.json")
    with pytest.raises(StepConflict, match="no application"):
        credit.end_early(barred, grant=True, by="赵六", text="", now=at("2026-09-15 10:00"))


def test_a_listing_from_proposal_to_early_removal_and_referrals_with_late_feedback_escalated(own_database):
    party = uscc("svlA")
    case = decided_case("2026-01-05 10:00", fine="500000", measures=["fine", "suspension"], party_id=party)
    pub = publication_of(case)
    publish(pub, "2026-01-06 10:00")
    light = decided_case("2026-01-05 10:00", fine="5000", party_id=uscc("svlB"))
    with pytest.raises(InvalidInput, match="第二条"):
        credit.propose(light, criterion="quality", by="李四", text="", now=at("2026-01-07 10:00"))
    with pytest.raises(InvalidInput, match="criterion"):
        credit.propose(case, criterion="nonsense", by="李四", text="", now=at("2026-01-07 10:00"))
    number = credit.propose(
        case, criterion="quality", by="李四", text="多次生产不合格产品", now=at("2026-01-07 10:00")
    ).number
    with session_scope() as session:
        approval = [d for d in deadlines_for(session, subject=number) if d.name == "listing-approval"][0]
    assert approval.authority == "330100"  # a county bureau's listing: the city bureau approves
    with pytest.raises(Forbidden):  # only a head of the approving bureau (every test person is one)
        credit.answer(
            number,
            step="listing-approval",
            answer={"by": "路人甲", "approve": True},
            source="cli",
            now=at("2026-01-08 10:00"),
        )
    approve = credit.open_step(number, "listing-approval", now=at("2026-01-08 09:00"))
    assert "330100" in approve.prompt or "杭州市市场监督管理局" in approve.prompt
    credit.answer(
        number,
        step="listing-approval",
        answer={"by": "局长", "approve": True},
        source="cli",
        now=at("2026-01-08 10:00"),
    )
    credit.answer(
        number,
        step="listing-notice",
        answer={"by": "李四", "served_on": "2026-01-09"},
        source="cli",
        now=at("2026-01-09 15:00"),
    )
    with pytest.raises(InvalidInput, match="may state its case until"):
        credit.answer(
            number,
            step="listing-decision",
            answer={"by": "赵六", "list": True, "party_answer": "none"},
            source="cli",
            now=at("2026-01-12 10:00"),
        )
    credit.answer(
        number,
        step="listing-decision",
        answer={"by": "赵六", "list": True, "party_answer": "statement"},
        source="cli",
        now=at("2026-01-13 10:00"),
    )
    credit.answer(number, step="listing-publication", answer={"by": "李四"}, source="cli", now=at("2026-01-14 10:00"))
    listed = row(Listing, number)
    assert listed.state == "listed" and local(listed.expires_at).startswith("2029-01-14")
    feed = json.loads(public("index.json"))
    assert [r["number"] for r in feed["serious_list"]] == [number]
    # Listed: the publication may not end early (Art. 14 para. 1 (4)) — and it is a suspension anyway.
    with pytest.raises(InvalidInput):
        credit.apply_end(pub, by="李四", text="", now=at("2026-12-01 10:00"))
    # Referred to the partners covering 330106 that take listings (and the major penalty before).
    with session_scope() as session:
        facts = get_case(session, number=number).facts
    referrals = facts["referrals"]
    assert len(referrals) == 3  # zj-tax, zj-finance, hz-housing
    ref = referrals[0]
    credit.answer(
        ref, step="referral-ack", answer={"by": "李四", "contact": "税务王"}, source="cli", now=at("2026-01-15 10:00")
    )
    feedback = due(ref)["referral-feedback"]
    assert feedback == ("2026-02-14 23:59:59", "open")  # 30 days, the partners file's limit
    send_reminders(at("2026-02-16 10:00"))
    with session_scope() as session:
        late = [e for e in list_escalations(session) if e.subject == ref]
    assert late, "a late feedback escalates"
    credit.answer(
        ref,
        step="referral-feedback",
        answer={"by": "李四", "measures": "招投标中限制参与"},
        source="cli",
        now=at("2026-02-17 10:00"),
    )
    assert get_case_status(ref) == "closed"
    # Early removal: not before a year listed; then verified and granted.
    with pytest.raises(InvalidInput, match="2027-01-14 之后方可申请"):
        credit.apply_removal(number, by="李四", text="", now=at("2026-06-01 10:00"))
    record = credit.record(party, by="李四", now=at("2026-06-01 10:00"))
    assert [p["number"] for p in record["publications"]] == [pub]
    assert record["listings"][0]["state"] == "listed"
    assert "招投标中限制参与" in [m["measures"] for m in record["partner_measures"]]
    check = credit.apply_removal(number, by="李四", text="已履行义务", now=at("2027-01-20 10:00"))
    assert "本局设定" in check.rule
    with pytest.raises(StepConflict, match="being verified"):
        credit.apply_removal(number, by="李四", text="", now=at("2027-01-21 10:00"))
    credit.remove(number, grant=False, by="赵六", text="尚未消除不良影响", now=at("2027-01-22 10:00"))
    again = credit.apply_removal(number, by="李四", text="已消除影响", now=at("2027-01-25 10:00"))
    assert (check.name, again.name, again.status) == ("listing-removal-1", "listing-removal-2", "open")
    credit.remove(number, grant=True, by="赵六", text="核实符合条件", now=at("2027-01-27 10:00"))
    assert due(number)["listing-removal-2"][1] == "met"
    assert (row(Listing, number).state, row(Listing, number).removal) == ("removed", "early")
    assert number not in public("index.json") and number not in public("serious-list.csv")
    # Each partner told to lift its measures; the referrals still waiting end with the listing.
    assert told_partners(number) == {"partner.zj-tax", "partner.zj-finance", "partner.hz-housing"}
    assert {get_case_status(r) for r in referrals} == {"closed"}


def listed(case: str, day: str) -> str:
    """A listing carried from proposal to publication, each step a day apart from `day`."""
    start = pendulum.parse(day, tz=TZ)
    number = credit.propose(case, criterion="consumer", by="李四", text="", now=start.in_timezone("UTC")).number
    for n, (step, answer) in enumerate(
        [
            ("listing-approval", {"by": "局长", "approve": True}),
            ("listing-notice", {"by": "李四", "served_on": start.add(days=1).date().isoformat()}),
            ("listing-decision", {"by": "赵六", "list": True, "party_answer": "waived"}),
            ("listing-publication", {"by": "李四"}),
        ],
        start=1,
    ):
        credit.answer(number, step=step, answer=answer, source="cli", now=start.add(days=n).in_timezone("UTC"))
    return number


def test_a_listing_ends_with_its_period_off_the_page_and_its_partners_are_told(own_database):
    case = decided_case("2026-02-02 10:00", fine="90000", measures=["fine", "revoke_licence"], party_id=uscc("end1"))
    publish(publication_of(case), "2026-02-03 10:00")
    number = listed(case, "2026-02-04 09:00")
    assert number in public("index.json")
    assert "credit/index.html" in (get_settings().home / "public" / "index.html").read_text(encoding="utf-8")
    # Published on 2026-02-08 (the fourth step, a day each): three years to the day.
    assert credit.expire(number, now=at("2029-02-08 12:00")).endswith("ends at 2029-02-08 23:59")
    assert credit.expire(number, now=at("2029-02-09 00:00")) == f"{number} ended"
    gone = row(Listing, number)
    assert (gone.state, gone.removal) == ("removed", "expired") and number not in public("index.json")
    assert told_partners(number) == {"partner.zj-tax", "partner.zj-finance", "partner.hz-housing"}


def told_partners(about: str) -> set[str]:
    """The partner channels told that what they took (`about`) has ended."""
    with session_scope() as session:
        referred = set(get_case(session, number=about).facts.get("referrals", []))
        return {
            n.tag
            for n in session.exec(sa.select(Notification)).scalars()
            if n.subject in referred and n.key.split(":")[1] == "ended" and n.tag.startswith("partner.")
        }


def get_case_facts(number: str) -> dict:
    with session_scope() as session:
        return get_case(session, number=number).facts


def get_case_status(number: str) -> str:
    with session_scope() as session:
        return get_case(session, number=number).status


def test_a_persons_identity_number_is_never_shown_and_hostile_names_are_text(own_database, caplog):
    case = decided_case("2026-09-10 10:00", fine="2000", party=HOSTILE, party_kind="person", party_id=PERSON_ID)
    number = publication_of(case)
    publish(number, "2026-09-11 10:00")
    page, feed, sheet = public("index.html"), public("index.json"), public("publications.csv")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert json.loads(feed)["publications"][0]["party"] == HOSTILE
    cells = list(csv.DictReader(io.StringIO(sheet)))
    assert cells[0]["party"].startswith("'<script>") or cells[0]["party"].startswith("<script>")
    assert not any(c.startswith("=") for c in cells[0].values())
    # Found by the number (through its digest), the number itself nowhere.
    record = credit.record(PERSON_ID, by="李四", now=at("2026-09-12 10:00"))
    assert [p["number"] for p in record["publications"]] == [number]
    with session_scope() as session:
        texts = [n.body + n.title for n in session.exec(sa.select(Notification)).scalars()]
        texts += [json.dumps(a.detail, ensure_ascii=False) for a in session.exec(sa.select(AuditEvent)).scalars()]
        dumped = [
            str(r)
            for t in ("step", "report", "publication", "enforcement_case")
            for r in session.execute(sa.text(f"SELECT * FROM {t}")).all()
        ]
    for text in [page, feed, sheet, json.dumps(record, ensure_ascii=False), *texts, *dumped, caplog.text]:
        assert PERSON_ID not in text
    with pytest.raises(InvalidInput, match="identity number") as refused:
        decided_case("2026-09-10 10:00", fine="2000", party_kind="person", party_id="330106198805201238")
    assert "330106198805201238" not in str(refused.value)


@on_postgresql
def test_publication_runs_published_from_the_cli_and_ended_by_their_scheduled_run(platform, use_database):
    """On a real Prefect server: a decision's publication gets its own run (started by
    the watcher) that waits for the publish step; answered from the CLI, the end of its
    period is a scheduled `credit-expiry` run among upcoming runs. A publication whose
    period has already run out is ended by that run itself."""
    from prefect.client.orchestration import get_client

    from tests.conftest import read_run, wait_for_pause, wait_until

    def run_of(number: str):
        with session_scope() as session:
            return get_case(session, number=number).flow_run_id

    def end_run_of(number: str):
        return row(Publication, number).end_run_id

    party = uscc(f"run{uuid.uuid4().hex[:6]}")
    current = publication_of(decided_case("2026-11-20 10:00", fine="3000", party_id=party))
    run_id = wait_until(lambda: run_of(current), timeout=60, what="the publication's run (started by the watcher)")
    wait_for_pause(run_id, "publication")
    refused = cli("publication", "publish", current, "--by", "路人甲")
    assert refused.code != 0 and len(refused.err.strip().splitlines()) == 1
    done = cli("publication", "publish", current, "--by", "李四", "--json")
    assert done.code == 0, done.err
    wait_until(lambda: read_run(run_id).state.is_completed(), timeout=90, what="the publication run to complete")
    end_run = wait_until(lambda: end_run_of(current), timeout=30, what="its end scheduled")
    scheduled = read_run(end_run)
    assert scheduled.state.is_scheduled()
    assert scheduled.expected_start_time == row(Publication, current).ends_at
    with get_client(sync_client=True) as client:
        assert client.read_deployment(scheduled.deployment_id).name == "credit-expiry"
    shown = json.loads(cli("publication", "show", current, "--json").out)
    assert shown["state"] == "published" and shown["end_run"] == str(end_run)
    record = json.loads(cli("credit", "show", party, "--json").out)
    assert [p["number"] for p in record["publications"]] == [current]

    # Published in March for three months: its end run is due at once and ends it.
    past = publication_of(decided_case("2026-03-02 10:00", fine="3000", party_id=uscc(f"old{uuid.uuid4().hex[:6]}")))
    publish(past, "2026-03-03 10:00")
    ended = wait_until(lambda: end_run_of(past), timeout=90, what="the past publication's end scheduled")
    wait_until(lambda: read_run(ended).state.is_completed(), timeout=120, what="its end run to complete")
    assert (row(Publication, past).state, row(Publication, past).end_reason) == ("ended", "expired")
    assert past not in public("index.json") and current in public("index.json")

    # Withdrawn before it was published (the decision revoked): its waiting run ends.
    revoked = publication_of(decided_case("2026-11-20 10:00", fine="3000", party_id=uscc(f"rv{uuid.uuid4().hex[:6]}")))
    waiting = wait_until(lambda: run_of(revoked), timeout=60, what="the revoked publication's run")
    wait_for_pause(waiting, "publication")
    today = pendulum.now(TZ).date().isoformat()
    gone = cli("publication", "withdraw", revoked, "--reason", "revoked", "--on", today, "--by", "李四", "--json")
    assert gone.code == 0, gone.err
    wait_until(
        lambda: read_run(waiting).state.is_completed(), timeout=90, what="the withdrawn publication's run to end"
    )

    # A person's number typed into the UI's decision form: on record only as its digest,
    # and the answer Prefect stored for the suspension is deleted once recorded.
    from prefect.flow_runs import resume_flow_run

    case = decided_case("2026-11-20 10:00", fine="2000", decide=False)
    case_run = wait_until(lambda: run_of(case), timeout=60, what="the case's run (started by the watcher)")
    wait_for_pause(case_run, "decision")
    resume_flow_run(
        case_run,
        run_input={
            "by": "赵六",
            "outcome": "penalty",
            "fine": "2000",
            "measures": ["fine"],
            "party_kind": "person",
            "party_id": PERSON_ID,
            "party_present": True,
        },
    )
    person = wait_until(lambda: get_case_facts(case).get("publication"), timeout=90, what="the decision recorded")

    def stored() -> list:
        with get_client(sync_client=True) as client:
            return client.filter_flow_run_input(flow_run_id=case_run, key_prefix="", limit=100, exclude_keys=set())

    wait_until(
        lambda: not [i for i in stored() if i.key.endswith("decision-response")],
        timeout=60,
        what="the UI's answer deleted from Prefect",
    )
    assert all(PERSON_ID not in i.value for i in stored())
    assert credit.record(PERSON_ID, by="李四", now=at("2026-12-01 10:00"))["publications"][0]["number"] == person
    with session_scope() as session:
        answers = [str(r) for r in session.execute(sa.text("SELECT answer FROM step")).all()]
    assert all(PERSON_ID not in a for a in answers)
