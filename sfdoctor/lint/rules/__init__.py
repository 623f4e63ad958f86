"""Lint rules: one module per rule, discovered at run time."""
