"""Shared test configuration.

The library never touches JAX's global configuration; the tests compare with
correctionlib's double-precision values, so they run with x64 enabled (set here,
for the test session only), and with synchronous CPU dispatch, which awkward's JAX
backend needs. ``tests/test_precision.py`` covers x64 off.
"""

from __future__ import annotations

import contextlib
import pathlib

import jax
import jax.monitoring
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
# awkward's JAX backend reads and writes JAX buffers through raw pointers without
# waiting for pending computations: with asynchronous CPU dispatch its results can be
# wrong (see the README). Read when JAX creates its CPU client, so set before any
# computation.
jax.config.update("jax_cpu_enable_async_dispatch", False)

# The default run is deterministic (a flaky failure would block a landing); failing
# examples found by `make fuzz` are kept as explicit @example cases.
settings.register_profile(
    "default",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    derandomize=False,
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORRECTIONS_DIR = SHARED_DATA / "corrections"
AGC_CORRECTIONS = SHARED_DATA / "agc" / "corrections.json"


def real_correction_files() -> list[pathlib.Path]:
    """The real CMS correction files, or [] when ../shared is absent (a user's clone)."""
    if not CORRECTIONS_DIR.is_dir():
        return []
    files = sorted(CORRECTIONS_DIR.glob("*.json.gz"))
    if AGC_CORRECTIONS.is_file():
        files.append(AGC_CORRECTIONS)
    return files


def require_shared(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the real CMS files live in ../shared/data beside the repo")
    return path


@pytest.fixture(scope="module", name="dask_client")
def dask_client_fixture():
    """A dask.distributed client of two worker processes on loopback."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # the scheduler serves HTTP even without a dashboard, on 8787 by default:
            # a free port instead, so that clusters of parallel test files never clash
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def agc_sample(tmp_path_factory):
    """The small generated AGC sample: (folder, manifest) (see ``agc_sample.py``)."""
    pytest.importorskip("pythia8mc")
    from agc_sample import shared_sample

    return shared_sample(tmp_path_factory)


COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compilations():
    """Count XLA compilations (JAX's public monitoring events) inside the block."""
    count = [0]

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
