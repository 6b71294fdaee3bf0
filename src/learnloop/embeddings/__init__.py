"""embeddings (see docs/)."""
