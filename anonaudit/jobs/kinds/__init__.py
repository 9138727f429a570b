"""Built-in job kinds; importing this package registers them all."""

from anonaudit.jobs.kinds import data_import, evaluate, noop, pipeline  # noqa: F401
