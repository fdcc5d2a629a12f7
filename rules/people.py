"""Who may act: the people of each authority and the roles they hold
(`data/people.yaml`, REGFLOW_PEOPLE_FILE).

Every human step names the role allowed to answer it: an incident's arrival the
on-site team, its reports the duty desk, its review the head; a case step the role
in `rules/cases.py`; acknowledging an escalation a duty officer or head of an
authority it has told; a deadline extension the head. A person acts at their own
authority; a head of a superior authority may also approve what a head below may.
A person is named by login or by name, whichever the CLI or the form gives.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from kernel.errors import InvalidPlan

ROLES = {
    "duty": "值班员 duty officer",
    "head": "负责人 head",
    "onsite": "现场处置人员 on-site officer",
    "handler": "承办人 handler",
    "legal": "法制审核人员 legal reviewer",
    "hearing": "听证主持人 hearing officer",
    "desk": "12315 承办人 desk officer",
    "mediator": "调解人 mediator",
    "inspector": "核查人员 inspector",
    "lab": "检验机构检验员 testing lab",
}


class Person(BaseModel):
    login: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    name: str = Field(min_length=1, max_length=100)
    authority: str = Field(min_length=2, max_length=32)
    roles: list[str] = Field(min_length=1)

    @field_validator("roles")
    @classmethod
    def _known(cls, roles: list[str]) -> list[str]:
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r} (known: {', '.join(ROLES)})")
        return roles

    def holds(self, roles: tuple[str, ...], authorities: tuple[str, ...]) -> bool:
        return self.authority in authorities and bool(set(self.roles) & set(roles))


class Directory(BaseModel):
    people: list[Person]

    def named(self, who: str) -> list[Person]:
        """Everyone `who` may be: by login, else by name (a name can recur across authorities)."""
        who = (who or "").strip()
        by_login = [p for p in self.people if p.login == who]
        return by_login or [p for p in self.people if p.name == who]

    def holders(self, roles: tuple[str, ...], authorities: tuple[str, ...]) -> list[Person]:
        return [p for p in self.people if p.holds(roles, authorities)]

    def allows(self, who: str, roles: tuple[str, ...], authorities: tuple[str, ...]) -> Person | None:
        """The person `who` acting in one of `roles` at one of `authorities`, or None."""
        return next((p for p in self.named(who) if p.holds(roles, authorities)), None)


def load_people(path: Path) -> Directory:
    """The directory, reloaded when the file changes; a bad file is one line naming it."""
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:
        raise InvalidPlan(f"{path}: no people file (who may act); see docs/operations.md") from None
    return _load_people(path, mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_people(path: Path, mtime_ns: int) -> Directory:
    try:
        directory = Directory.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InvalidPlan(f"{path}: not valid YAML" + (f" (line {mark.line + 1})" if mark else "")) from exc
    except ValidationError as exc:
        from rules.authorities import first_error

        raise InvalidPlan(f"{path}: {first_error(exc)}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidPlan(f"{path}: cannot read it ({type(exc).__name__})") from exc
    logins = [p.login for p in directory.people]
    if len(set(logins)) != len(logins):
        raise InvalidPlan(f"{path}: login {next(x for x in logins if logins.count(x) > 1)!r} is listed twice")
    return directory


def describe(roles: tuple[str, ...]) -> str:
    return " / ".join(ROLES[r] for r in roles)
