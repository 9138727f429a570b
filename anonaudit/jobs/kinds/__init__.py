"""Built-in job kinds; importing this package registers them all."""

from anonaudit.jobs.kinds import anonymise, data_import, evaluate, noop, pipeline  # noqa: F401
from anonaudit.jobs.kinds import explain  # noqa: F401
