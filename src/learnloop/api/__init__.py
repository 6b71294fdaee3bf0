"""api (see docs/)."""
