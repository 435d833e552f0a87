"""The server tests' PostgreSQL and S3 server, for the docs' scale setup."""

from tests.server.conftest import postgres, sigv4_s3

__all__ = ["postgres", "sigv4_s3"]
