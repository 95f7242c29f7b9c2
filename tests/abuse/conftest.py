"""The abuse suite: hypothesis profiles, the ``abuse`` marker, and the platform every module
fuzzes (all gRPC services in-process, started once per module, on isolated stores).

Profiles (``PCM_ABUSE_PROFILE``):

- ``ci`` (default, what ``make test`` runs): a few examples per method, derandomized so a CI run
  is reproducible, no deadline (calls go to real stores on a shared machine);
- ``abuse`` (``make abuse``): hundreds of examples per method, random each run.

Neither keeps an example database (hypothesis's other caches in ``.hypothesis/`` ignore
themselves in git); a failure prints the request that caused it, shrunk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, settings
from pcm_common.catalogues import Catalogues

from tests.abuse.platform import Platform, running_platform

PROFILE_VARIABLE = "PCM_ABUSE_PROFILE"
_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": False,
}
settings.register_profile("ci", max_examples=20, derandomize=True, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("abuse", max_examples=300, **_COMMON)  # type: ignore[arg-type]


def profile() -> settings:
    """The profile the suite runs with (``ci`` unless ``PCM_ABUSE_PROFILE`` names another)."""
    return settings.get_profile(os.environ.get(PROFILE_VARIABLE, "ci"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "abuse: hypothesis fuzzing of every public API (profile from PCM_ABUSE_PROFILE: ci, abuse)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/abuse/" in item.nodeid:
            item.add_marker(pytest.mark.abuse)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def platform(
    stack: object, catalogues: Catalogues, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    token_file = tmp_path_factory.mktemp("abuse") / "tokens.json"
    with running_platform(catalogues, token_file) as running:
        yield running


@pytest.fixture(autouse=True)
def still_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test of the suite, every service still answers SERVING."""
    yield
    if "platform" in request.fixturenames:
        running: Platform = request.getfixturevalue("platform")
        statuses = running.health()
        assert set(statuses.values()) == {health_pb2.HealthCheckResponse.SERVING}, statuses
