"""The end-to-end tests use the integration tests' real stack and worker."""

from tests.integration.conftest import local_stack, worker  # noqa: F401
