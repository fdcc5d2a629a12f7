"""Message, document and form-prompt text, rendered from jinja2 templates.

The sandbox and StrictUndefined mean a template cannot reach Python internals and a
missing variable is an error, not a blank. User text is passed in as data, never
compiled as a template.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from functools import lru_cache
from pathlib import Path

import pendulum
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from kernel.settings import get_settings


@lru_cache(maxsize=4)
def _environment(templates_dir: Path, tz: str) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["local"] = lambda value: local_time(value, tz)
    env.filters["left"] = time_left
    env.filters["cell"] = cell
    return env


def cell(text: object) -> str:
    """User text in a Markdown table cell: one line, no column breaks."""
    return str(text).replace("\n", " ").replace("|", "\\|")


def local_time(value: dt.datetime | None, tz: str | None = None) -> str:
    if value is None:
        return "-"
    return pendulum.instance(value).in_timezone(tz or get_settings().timezone).format("YYYY-MM-DD HH:mm")


def time_left(due: dt.datetime, now: dt.datetime) -> str:
    """'还剩 1小时5分 / 1h 5m left' or '已超时 … / overdue by …'."""
    seconds = int((due - now).total_seconds())
    span = abs(seconds) // 60
    days, rest = divmod(span, 24 * 60)
    hours, minutes = divmod(rest, 60)
    zh = (f"{days}天" if days else "") + (f"{hours}小时" if hours else "") + f"{minutes}分"
    en = (f"{days}d " if days else "") + (f"{hours}h " if hours else "") + f"{minutes}m"
    return f"还剩 {zh} / {en} left" if seconds >= 0 else f"已超时 {zh} / overdue by {en}"


def render(name: str, **context: object) -> str:
    settings = get_settings()
    template = _environment(settings.templates_dir, settings.timezone).get_template(name)
    return template.render(**context)


def preload() -> int:
    """Compile every template now (a prewarmed launcher's children then find them
    compiled, ~40 ms each otherwise); returns how many."""
    settings = get_settings()
    env = _environment(settings.templates_dir, settings.timezone)
    names = env.list_templates(extensions=["j2"])
    for name in names:
        env.get_template(name)
    return len(names)


def render_message(name: str, **context: object) -> tuple[str, str]:
    """A message template's first line is its title, the rest its body."""
    text = render(f"messages/{name}.j2", **context)
    title, _, body = text.partition("\n")
    return title.strip(), body.strip() + "\n"


def public_page(template: str, **context: object) -> str:
    """A page for the public (templates/public/): every value HTML-escaped."""
    return html_page(f"public/{template}", **context)


def html_page(template: str, **context: object) -> str:
    """An HTML page from templates/ (a public page, a supervision report): every value
    HTML-escaped."""
    from jinja2 import Environment

    settings = get_settings()
    env = Environment(loader=FileSystemLoader(str(settings.templates_dir)), autoescape=True, undefined=StrictUndefined)
    return env.get_template(template).render(**context)


def write_public(folder: str, stem: str, files: dict[str, str]) -> list[Path]:
    """Files under the home's public/<folder>/ by suffix, each written whole beside and
    moved into place: a reader never sees half a file. The folder's index (public/
    index.html) then lists every page there is."""
    root = get_settings().home / "public"
    where = root / folder
    where.mkdir(parents=True, exist_ok=True)
    out = [write_whole(where / f"{stem}.{suffix}", text) for suffix, text in files.items()]
    pages = []
    for page in sorted(root.glob("*/*.html")):
        found = _TITLE.search(page.read_text(encoding="utf-8"))
        pages.append(
            {"href": f"{page.parent.name}/{page.name}", "title": html.unescape(found[1]) if found else page.stem}
        )
    write_whole(root / "index.html", public_page("index.html.j2", pages=pages))
    return out


_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


def write_whole(path: Path, text: str) -> Path:
    """Written beside, then moved into place: a reader never sees half a file."""
    part = path.with_suffix(path.suffix + ".part")
    part.write_text(text, encoding="utf-8")
    part.replace(path)
    return path
