"""training (see docs/)."""
