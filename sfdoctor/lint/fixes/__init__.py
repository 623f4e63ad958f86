"""Phase 5: fixes: range edits built from node positions, applied, re-linted until settled, written
atomically."""
