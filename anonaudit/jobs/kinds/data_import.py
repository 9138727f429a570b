"""Job kind ``import``: read a dataset in any supported layout and register it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anonaudit.data.loaders import FORMATS
from anonaudit.errors import ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.datasets import import_dataset
from anonaudit.jobs.params import check_exists, parse_params
from anonaudit.jobs.registry import job_kind


@dataclass
class ImportParams:
    path: str
    format: str = "auto"
    name: str | None = None
    replace: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        check_exists("path", self.path)
        if self.format != "auto" and self.format not in FORMATS:
            raise ParameterError("format", f"unknown {self.format!r}; choose auto or one of {list(FORMATS)}")


@job_kind("import", params=ImportParams, paths=("path",))
def run_import(ctx: JobContext) -> dict[str, Any]:
    p = parse_params(ImportParams, ctx.params)
    _, record = import_dataset(ctx, p.path, p.format, name=p.name, replace=p.replace, options=p.options)
    return record
