"""The household of `tests.core.test_claims` (its `world` fixture) for the review's tests."""

from tests.core.test_claims import world  # noqa: F401 (a fixture)
