"""knowledge (see docs/)."""
