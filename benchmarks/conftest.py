import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="benchmarks launch real instances: run as root (nox -s benchmarks)")
        for item in items:
            if "needs_root" in item.keywords:
                item.add_marker(skip)
