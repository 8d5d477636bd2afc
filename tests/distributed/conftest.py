"""One Dask LocalCluster (two worker processes) shared by the distributed tests."""
from __future__ import annotations

import pytest

from oddity.distributed import dask_client


@pytest.fixture(scope="session")
def client():
    with dask_client("local:2") as client:
        yield client
