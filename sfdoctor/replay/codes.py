"""Placeholder until issue 3 lands."""

REPLAY_RULES = ()
