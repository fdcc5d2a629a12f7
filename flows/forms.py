"""The typed forms of human steps.

The Prefect UI renders these when a run is suspended, and the CLI validates its
arguments with the same classes before resuming the run with the same input.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from prefect.input import RunInput
from pydantic import Field, field_validator

from rules.incidents import MAX_TEXT, clean_line, clean_text

_NAME = dict(min_length=1, max_length=100)


class _Form(RunInput):
    @field_validator("*", mode="before")
    @classmethod
    def _clean(cls, value, info):
        if not isinstance(value, str):
            return value
        return clean_text(value) if info.field_name in cls.multiline else clean_line(value)

    multiline: ClassVar[tuple[str, ...]] = ()


class ArrivalForm(_Form):
    officer: str = Field(title="到场负责人 Officer in charge on site",
                         description="现场处置组负责人姓名 / name of the on-site team leader", **_NAME)
    note: str = Field(default="", max_length=2000, title="现场情况 Situation on arrival",
                      description="到场时的现场情况（可选）/ what the team found (optional)")
    multiline: ClassVar[tuple[str, ...]] = ("note",)


class ReportForm(_Form):
    author: str = Field(title="报告人 Author", description="报告人姓名 / who writes the report", **_NAME)
    text: str = Field(min_length=1, max_length=MAX_TEXT, title="报告内容 Report",
                      description="事件经过、伤亡、已采取措施、下一步 / what happened, casualties, actions, next steps")
    multiline: ClassVar[tuple[str, ...]] = ("text",)


class ProgressForm(_Form):
    action: Literal["progress", "close"] = Field(
        default="progress", title="操作 Action",
        description="progress = 续报（事件仍在处置）/ progress report; close = 处置结束 / handling has ended")
    author: str = Field(title="报告人 Author", description="报告人姓名 / who writes it", **_NAME)
    text: str = Field(min_length=1, max_length=MAX_TEXT, title="内容 Text",
                      description="续报内容，或处置结束的小结 / the progress report, or a summary of how handling ended")
    multiline: ClassVar[tuple[str, ...]] = ("text",)


class ReviewForm(_Form):
    reviewer: str = Field(title="评估人 Reviewer", description="事后评估负责人 / who led the review", **_NAME)
    lessons: str = Field(min_length=1, max_length=MAX_TEXT, title="经验教训 Lessons learned",
                         description="处置评估、经验教训与改进措施 / assessment, lessons and improvements")
    multiline: ClassVar[tuple[str, ...]] = ("lessons",)


FORMS: dict[str, type[_Form]] = {
    "arrival": ArrivalForm, "report": ReportForm, "progress": ProgressForm, "review": ReviewForm,
}


def author_of(form: str, answer: dict) -> str:
    return answer.get({"arrival": "officer", "review": "reviewer"}.get(form, "author"), "")
