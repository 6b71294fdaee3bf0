"""Storage: the server (embedded or by URL), migrations, tenancy, shared validation."""
