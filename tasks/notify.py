"""Notifications: queue them in the outbox, and deliver them through apprise.

Channels are configured the apprise way: a config file whose URLs carry tags
`<authority code>.<role>` (e.g. `330106.duty`). Tokens stay out of the file:
`${env:NAME}` takes an environment variable and `${secret:NAME}` a Prefect Secret
block, substituted when the file is loaded. Whatever was substituted is scrubbed
from every error we record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import apprise

from kernel.errors import InvalidInput
from kernel.settings import get_settings
from rules.drills import DRILL_MARK
from storage import notifications as outbox
from storage.db import session_scope, utcnow

log = logging.getLogger("regflow.notify")
_PLACEHOLDER = re.compile(r"\$\{(env|secret):([A-Za-z0-9_.-]+)\}")


@dataclass
class Channels:
    servers: apprise.Apprise
    secrets: tuple[str, ...] = ()
    urls: tuple[str, ...] = field(default_factory=tuple)

    def destinations(self, tag: str) -> list[tuple[str, object]]:
        """(fingerprint, apprise plugin) for every URL carrying `tag`."""
        return [(fingerprint(server.url()), server) for server in self.servers.find(tag=tag)]

    def scrub(self, text: str) -> str:
        for secret in sorted((*self.secrets, *self.urls), key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text


def fingerprint(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def names_prefect_secrets(path: Path) -> bool:
    """Whether loading the channels file reads Prefect Secret blocks (an API call)."""
    return any(kind == "secret" for kind, _ in _PLACEHOLDER.findall(path.read_text(encoding="utf-8")))


def _substitute(text: str, path: Path) -> tuple[str, list[str]]:
    used: list[str] = []

    def value(match: re.Match) -> str:
        kind, name = match.groups()
        if kind == "env":
            found = os.environ.get(name)
        else:
            from prefect.blocks.system import Secret

            try:
                found = Secret.load(name).get()
            except ValueError:
                found = None
        if found is None:
            raise InvalidInput(f"{path}: {kind} {name!r} is not set")
        used.append(str(found))
        return str(found)

    return _PLACEHOLDER.sub(value, text), used


_cache: dict[tuple[str, float], Channels] = {}


def load_channels(path: Path | None = None) -> Channels:
    """The configured channels; reloaded when the file changes."""
    path = path or get_settings().apprise_config_path
    if not path.exists():
        return Channels(servers=apprise.Apprise())
    key = (str(path), path.stat().st_mtime)
    if key not in _cache:
        text, secrets = _substitute(path.read_text(encoding="utf-8"), path)
        config = apprise.AppriseConfig()
        fmt = "yaml" if path.suffix in (".yml", ".yaml") else "text"
        try:  # apprise parses lazily, and raises on some bytes instead of reporting them
            if not config.add_config(text, format=fmt):
                raise InvalidInput(f"{path}: not a valid apprise {fmt} config")
            servers = apprise.Apprise()
            servers.add(config)
            urls = tuple(server.url() for server in servers)
            for server in servers:
                if server.protocol in ("mailto", "mailtos") or server.secure_protocol in ("mailto", "mailtos"):
                    # apprise waits 5.5 s between two mails of one destination; a burst of
                    # dispatch orders must not queue behind it (the outbox retries failures).
                    server.request_rate_per_sec = 0
        except InvalidInput:
            raise
        except Exception as exc:
            raise InvalidInput(f"{path}: not a valid apprise {fmt} config ({type(exc).__name__})") from exc
        _cache.clear()
        _cache[key] = Channels(servers=servers, secrets=tuple(secrets), urls=urls)
    return _cache[key]


# Every message about a drill says so first, in its title and body.
DRILL_BANNER = f"{DRILL_MARK}本消息为应急演练，非真实事件。 This is an exercise, not a real incident."


def queue(
    session, *, number: str, key: str, tags: list[str], template: str, now: dt.datetime, **variables: object
) -> None:
    """Render a message once and queue it for each tag, keyed `<subject>:<key>:<tag>`
    so the same step re-executed queues nothing new. `number` is the incident's or
    case's number."""
    from storage.rosters import personal_tags
    from tasks.render import render_message

    title, body = render_message(template, now=now, **variables)
    if getattr(variables.get("subject"), "drill", False):
        title, body = f"{DRILL_MARK}{title}", f"{DRILL_BANNER}\n\n{body}"
    # A duty desk's message reaches the officer on duty by their own channel too.
    tags = [*tags, *personal_tags(session, tags, at=now, people=_people)]
    for tag in dict.fromkeys(tags):
        outbox.enqueue(session, key=f"{number}:{key}:{tag}", subject=number, tag=tag, title=title, body=body, now=now)


def _people():
    """The people file, or nobody: a broken file (which `regflow doctor` names) must not
    stop a message reaching the desk."""
    from rules.people import Directory, load_people

    try:
        return load_people(get_settings().people_file)
    except Exception as exc:
        log.warning("people file unreadable, the officer on duty is not told in person: %s", str(exc)[:200])
        return Directory(people=[])


def backoff(attempts: int) -> dt.timedelta:
    settings = get_settings()
    seconds = min(settings.outbox_backoff_base * 2 ** max(attempts - 1, 0), settings.outbox_backoff_cap)
    return dt.timedelta(seconds=seconds)


@dataclass
class Delivery:
    sent: int = 0
    retrying: int = 0
    left: int = 0  # due, but not taken: the budget was spent


def deliver_due(
    *,
    now: dt.datetime | None = None,
    subject: str | None = None,
    limit: int = 100,
    channels: Channels | None = None,
    budget: float | None = None,
) -> Delivery:
    """Send every outbox row due at `now` (or those of one subject); safe to run anywhere, at once.

    `now` is the one clock reading the whole call works by: which rows are due, how long
    a claim holds, when a failure is retried, when a row was sent. The watcher passes
    its cycle's, so a test moves the clock instead of waiting; a caller of its own may
    leave it to the current time. With a `budget` (seconds), no new row is taken once
    it is spent, the first excepted so that a slow channel still makes progress; the
    rest stay due for the next call."""
    started = time.monotonic()
    now = utcnow() if now is None else now
    channels = channels or load_channels()
    settings = get_settings()
    result = Delivery()
    # The watcher's reading is up to its managers' budgets old by now: a claim
    # (outbox_claim_seconds) must outlast that, or a second sender could take the row.
    until = now + dt.timedelta(seconds=settings.outbox_claim_seconds)
    with session_scope() as session:
        ids = outbox.due_ids(session, now=now, subject=subject, limit=limit)
    for taken, notification_id in enumerate(ids):
        if budget is not None and taken and time.monotonic() - started >= budget:
            result.left = len(ids) - taken
            break
        with session_scope() as session:
            row = outbox.claim(session, notification_id=notification_id, now=now, until=until)
            if row is None:
                continue
            tag, title, body, attempts, delivered = row.tag, row.title, row.body, row.attempts, list(row.delivered)
            key, subject_number = row.key, row.subject
        errors = _send(channels, tag, title, body, delivered)
        with session_scope() as session:
            if errors:
                outbox.mark_retry(
                    session,
                    notification_id=notification_id,
                    error="; ".join(errors),
                    retry_at=now + backoff(attempts),
                    delivered=delivered,
                )
                if attempts >= FALLBACK_AFTER:
                    _fallback(
                        session, channels, key=key, subject=subject_number, tag=tag, title=title, body=body, now=now
                    )
                result.retrying += 1
            else:
                outbox.mark_sent(session, notification_id=notification_id, now=now, delivered=delivered)
                result.sent += 1
    return result


def deliver_now(subject: str, *, wait: float) -> bool:
    """Send a subject's due messages from this process at once (a trigger's dispatch
    order), waiting at most `wait` seconds; False if that was not enough. What is
    left, or was claimed when this process exits, the watcher sends once the claim
    expires: the outbox stays the only way out."""
    from kernel.waiting import at_most

    def send() -> None:
        try:
            deliver_due(subject=subject, now=utcnow())
        except Exception as exc:  # the watcher retries; the trigger itself stands
            log.warning("%s: immediate delivery failed (%s); the watcher retries", subject, type(exc).__name__)

    return at_most(send, wait)[0]


# An escalation whose channel has failed this many times also goes out by the
# authority's fallback channel (tag `<code>.fallback`, e.g. an SMS gateway), once.
FALLBACK_AFTER = 2


def _fallback(
    session, channels: Channels, *, key: str, subject: str, tag: str, title: str, body: str, now: dt.datetime
) -> None:
    fallback = f"{tag.split('.')[0]}.fallback"
    if ":escalation:" not in key or key.endswith(":fallback") or not channels.destinations(fallback):
        return
    outbox.enqueue(
        session,
        key=f"{key}:fallback",
        subject=subject,
        tag=fallback,
        title=f"【备用通道 FALLBACK】{title}",
        body=f"{body}\n（主通道 {tag} 多次发送失败 / sent here because {tag} keeps failing）\n",
        now=now,
    )


def _send(channels: Channels, tag: str, title: str, body: str, delivered: list[str]) -> list[str]:
    """Deliver to each destination of `tag` not yet delivered; appends to `delivered`."""
    destinations = channels.destinations(tag)
    if not destinations:
        return [f"no channel configured for tag {tag}"]
    errors = []
    for fp, server in destinations:
        if fp in delivered:
            continue
        single = apprise.Apprise()
        single.add(server)
        try:
            with apprise.LogCapture(level=logging.WARNING) as captured:
                ok = single.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
            detail = captured.getvalue().strip().splitlines()
        except Exception as exc:  # a plugin failure is a failed attempt, never a crash
            ok, detail = False, [f"{type(exc).__name__}: {exc}"]
        if ok:
            delivered.append(fp)
        else:
            reason = channels.scrub(detail[-1] if detail else "delivery failed")
            errors.append(f"{tag}/{fp[:8]}: {reason}"[:240])
    return errors
