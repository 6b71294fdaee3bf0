"""Per-account operations: installation keys, tenants created over HTTP, tenant settings."""
