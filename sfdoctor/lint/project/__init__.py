"""Phases 3 and 4: per-file summaries, linked into one project view that the analyses and rules ask
about names defined in other modules."""
