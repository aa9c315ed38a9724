"""The suite relies on pytest-xdist's ``--dist loadgroup`` to keep every real Flower
deployment on one worker, one after the other (test_flower_deployment.DEPLOYMENTS):
several at once on 2 cores starve Flower's heartbeats. xdist puts a test in its group
by suffixing its node id with ``@group``; with pytest 9.2 that write has no effect and
the groups are silently ignored (found in CI: three deployments started in the same
second on three workers). This checks that the mark reaches the scheduler."""
import os

import pytest


@pytest.mark.xdist_group("grouping_check")
def test_an_xdist_group_mark_reaches_the_scheduler(request):
    if "PYTEST_XDIST_WORKER" not in os.environ or not request.config.getoption("loadgroup", False):
        pytest.skip("only meaningful under --dist loadgroup (the README's test command)")
    assert request.node.nodeid.endswith("@grouping_check"), request.node.nodeid
