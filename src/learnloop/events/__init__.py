"""Events: the transactional outbox (here), archive and live stream (later)."""
