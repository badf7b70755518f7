"""Test helpers shared by every test package: an SMTP sink, PostgreSQL databases,
and the pytest fixtures in ``tests.support.fixtures``."""
