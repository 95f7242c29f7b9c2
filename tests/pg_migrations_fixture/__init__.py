"""A throwaway PostgreSQL migration group for tests/integration/test_postgres.py."""
