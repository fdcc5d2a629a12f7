"""Supervisors' pictures and the monthly supervision report (tasks/stats.py computes the
figures): PNG plots by matplotlib, an HTML report by jinja2 with the plots and tables,
the flags the supervision rules raise, recorded for the province's head to decide, and
the report sent to that head."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.settings import get_settings
from rules.stats import Flag, Window, flags, load_supervision_rules, month_before
from storage import audit
from storage.authorities import load_tree
from storage.db import session_scope
from storage.supervision import flags_of, raise_flag
from tasks.notify import queue
from tasks.stats import Records, figures, yearly_failures

PLOTS = ("on-time", "minutes-to", "case-ageing", "escalations")


def _pyplot():
    """matplotlib without a display, with a CJK font where one is installed (Debian's
    fonts-noto-cjk), so the labels' Chinese is drawn, not boxes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    cjk = [f.name for f in font_manager.fontManager.ttflist if "CJK" in f.name and "Sans" in f.name]
    plt.rcParams["font.family"] = [*sorted(set(cjk))[:1], "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def plot(data: dict[str, Any], records: Records, window: Window, folder: Path) -> dict[str, Path]:
    """The four pictures of `data` (tasks.stats.figures) into `folder`; their paths by name."""
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def save(name: str, fig) -> None:
        path = folder / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out[name] = path

    shares = data["total"]["deadlines"]["by_authority"]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    codes = list(shares)
    ax.bar(codes, [100 * (shares[c]["on_time_share"] or 0) for c in codes], color="#2f6f9f")
    ax.set_ylim(0, 100)
    ax.set_ylabel("按时率 on time (%)")
    ax.set_title("各单位时限按时率 / On-time share per authority")
    for i, code in enumerate(codes):
        ax.annotate(f"{shares[code]['on_time']}/{shares[code]['due']}", (i, 2), ha="center", color="white", fontsize=8)
    save("on-time", fig)

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, name, label in zip(
        axes, ("dispatch", "initial_report"), ("出动 dispatch", "初报 initial report"), strict=True
    ):
        values = records.minutes_to(window, name)
        ax.hist(values or [0], bins=min(20, max(5, len(values) // 3)), color="#9f4f2f", alpha=0.85 if values else 0)
        ax.set_title(f"{label}（分钟 min, n={len(values)}）")
        ax.set_xlabel("触发后分钟 minutes after trigger")
    save("minutes-to", fig)

    ages = data["total"]["cases"]["open_by_age"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(ages), list(ages.values()), color=["#6a9f2f", "#c8a02f", "#d0702f", "#b02f2f"])
    ax.set_title("在办案件立案后天数 / Open cases by days since filing")
    ax.set_ylabel("件 cases")
    save("case-ageing", fig)

    periods = data["periods"]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar([p["period"] for p in periods], [p["escalations"]["raised"] for p in periods], color="#5f3f8f")
    ax.set_title("每期升级次数 / Escalations per period")
    ax.set_ylabel("次 escalations")
    save("escalations", fig)
    return out


@dataclass
class Report:
    folder: Path
    html: Path
    figures: Path
    plots: dict[str, Path]
    flags: list[Flag]
    new_flags: int
    summary: str  # Markdown, for the run's artifact and the message
    data: dict[str, Any]  # the figures (tasks.stats.figures), as figures.json holds them


def monthly(province: str, *, today: dt.date, now: dt.datetime, month: Window | None = None) -> Report:
    """The supervision report of `province` (and all it supervises) for the month before
    `today` (or `month`): figures, plots, flags, the HTML page, all under
    $REGFLOW_HOME/reports/<province>/<month>/, and the flags recorded."""
    from tasks.render import html_page, write_whole

    settings = get_settings()
    window = month or month_before(today, settings.timezone)
    day = _local_day(window)
    rules = load_supervision_rules(settings.supervision_rules)
    with session_scope() as session:
        data, records = figures(session, province, day, day, by="month", now=now)
        # Whole calendar years only, the last one ended before the report's month.
        years = yearly_failures(session, data["scope"], day.year - 1, rules.spot_check_failures.years)
        authority = load_tree(session).get(province)
        decided = [f for f in flags_of(session, provinces=[province]) if f.status == "decided"]
    month_figures = data["periods"][-1]
    on_time = {
        code: (line["on_time"], line["due"]) for code, line in month_figures["deadlines"]["by_authority"].items()
    }
    # Flags are the province's to raise, for its head to decide: a city's or county's
    # report shows its figures and raises none.
    found = flags(rules, period=window.label, year=day.year - 1, on_time=on_time, failures=years)
    found = found if authority.tier == "province" else []
    folder = settings.home / "reports" / province / window.label
    plots = plot(data, records, window, folder)
    summary = _summary(province, window.label, month_figures, found, rules)
    page = html_page(
        "reports/monthly.html.j2",
        province=province,
        name=authority.name,
        month=window.label,
        data=data,
        month_figures=month_figures,
        flags=found,
        decided=decided,
        rules=rules,
        plots={name: path.name for name, path in plots.items()},
        made_at=now,
    )
    html = write_whole(folder / "report.html", page)
    figures_file = write_whole(folder / "figures.json", json.dumps(data, ensure_ascii=False, indent=2, default=str))
    # The flags and the message to the head in one transaction: a report made again
    # (a retried run) raises no flag twice and sends nothing twice (the outbox key).
    with session_scope() as session:
        new = sum(raise_flag(session, province=province, now=now, **vars(f)) for f in found)
        queue(session, number=subject(province, window.label), key="monthly-report", tags=[f"{province}.head"],
              template="supervision_report", now=now, authority=authority,
              month=window.label, summary=summary, report=str(html), flags=found)  # fmt: skip
    return Report(folder, html, figures_file, plots, found, new, summary, data)


def subject(province: str, month: str) -> str:
    """The report's name in the outbox (its messages are keyed by it)."""
    return f"RPT-{province}-{month}"


def _local_day(window: Window) -> dt.date:
    import pendulum

    return pendulum.instance(window.start).in_timezone(get_settings().timezone).date()


def _summary(province: str, month: str, f: dict[str, Any], found: list[Flag], rules) -> str:
    d, e, c, q = f["deadlines"], f["emergencies"], f["cases"], f["complaints"]
    share = "—" if d["on_time_share"] is None else f"{d['on_time_share']:.1%}"
    lines = [
        f"## {province} 监管月报 {month} / Supervision report of {month}",
        "",
        f"- 突发事件 Incidents: {e['incidents']}；出动中位 {e['minutes_to']['dispatch']['median'] or '—'} 分钟",
        f"- 时限 Deadlines due: {d['due']}，按时 {d['on_time']}（{share}），提醒 reminders {d['reminders_sent']}",
        f"- 升级 Escalations: {f['escalations']['raised']}，已确认 acknowledged {f['escalations']['acknowledged']}",
        f"- 案件 Cases: 受理 {c['received']}，立案 {c['filed']}，结案 {c['closed']}，超期在办 {c['open_past_limit']}",
        f"- 投诉 Complaints: {q['received']}，按时受理 {q['accepted_within_limit']}/{q['acceptance_due']}",
        f"- 提示 Flags: {len(found)}"
        + ("" if rules.confirmed else "（阈值为本地政策，未经法规核实 / thresholds unconfirmed local policy）"),
    ]
    lines += [f"  - {flag.authority}: {flag.why} → 建议 {rules.measures[flag.measure]}" for flag in found]
    return "\n".join(lines) + "\n"


def decide(flag_id: int, *, decision: str, by: str, reason: str, now: dt.datetime) -> Any:
    """The province head's decision on a flag, on the record and the audit log."""
    from sqlmodel import select

    from kernel.errors import InvalidInput, NotFound, StepConflict
    from storage.supervision import SupervisionFlag
    from tasks.access import require

    rules = load_supervision_rules(get_settings().supervision_rules)
    if decision != "none" and decision not in rules.measures:
        raise InvalidInput(f"decision {decision!r}: give one of {', '.join([*rules.measures, 'none'])}")
    with session_scope() as session:
        # Locked (PostgreSQL) so two heads deciding at once decide once; SQLite's writer
        # lock does the same there.
        flag = session.exec(select(SupervisionFlag).where(SupervisionFlag.id == flag_id).with_for_update()).first()
        if flag is None:
            raise NotFound(f"no flag {flag_id} (see `regflow flag list`)")
        require(session, by, roles=("head",), authorities=(flag.province,), subject=f"FLAG-{flag_id}",
                action="decide on the flag", now=now)  # fmt: skip
        if flag.status == "decided":
            raise StepConflict(f"flag {flag_id} was decided already ({flag.decision}, by {flag.decided_by})")
        flag.status, flag.decision, flag.decided_by, flag.decided_at, flag.reason = "decided", decision, by, now, reason
        session.add(flag)
        audit.record(session, at=now, actor=by, action="flag.decided", subject=f"FLAG-{flag_id}",
                     authority=flag.authority, rule=flag.rule, period=flag.period, decision=decision)  # fmt: skip
        session.flush()
        session.refresh(flag)
        return flag
