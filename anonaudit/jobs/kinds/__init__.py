"""Built-in job kinds; importing this package registers them all."""

from anonaudit.jobs.kinds import data_import, noop, pipeline  # noqa: F401
