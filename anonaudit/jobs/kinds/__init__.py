"""Built-in job kinds. Each module registers its kinds when imported; :func:`load_all` imports them.

Importing this package alone imports no kind, so ``from anonaudit.jobs.kinds.explain import
ExplainParams`` (as the app's pages do) pays only for that module, not for torch, Opacus and Dask.
"""

from importlib import import_module

MODULES = ("anonymise", "bias_audit", "data_import", "dp_train", "evaluate", "explain", "frontier", "noop", "pipeline")


def load_all() -> None:
    for name in MODULES:
        import_module(f"{__name__}.{name}")
