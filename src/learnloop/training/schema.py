"""Training tables (datasets, fine-tuning jobs, provenance) — filled in by the training issue."""

from ..store.migrations import MigrationSet

MIGRATIONS = MigrationSet("training", [])
