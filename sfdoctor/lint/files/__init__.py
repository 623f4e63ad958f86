"""Phase 1 of the linter: which files a run looks at, and reading them safely (regular files only, size
limit, encodings)."""
