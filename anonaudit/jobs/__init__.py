"""Job runtime: the kinds of work (``kinds/``), the worker that runs them, and their context."""
