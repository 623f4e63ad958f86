"""sfdoctor: find ScheduleFree training bugs before and during a run."""

__version__ = "0.1.0"
