"""Phase 2: the per-file analyses rules ask about: the one index walk, values, optimizer constructions,
schedulers, the train/eval mode flow, and dependency pins."""
