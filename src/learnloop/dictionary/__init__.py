"""dictionary (see docs/)."""
