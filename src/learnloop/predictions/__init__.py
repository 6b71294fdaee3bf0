"""predictions (see docs/)."""
