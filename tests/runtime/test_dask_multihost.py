"""Dask across hosts: a scheduler and two single-threaded workers, each on its own test
host (a network namespace of this machine, see ``_netns``), and this process as the
client. A workflow's independent nodes must run on both worker hosts.

Each probe reports the worker's address and the network namespace it ran in
(``/proc/self/ns/net``), so "ran on the other host" is checked against the kernel, not
only against what dask says. Skipped without root or ``ip netns``.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from _netns import (
    NetnsCluster,
    alive,
    links,
    namespaces,
    netns_cluster,
    pids,
    routable,
    routes,
    unavailable_reason,
)

from kailash_nb import WorkflowBuilder

distributed = pytest.importorskip("distributed")

PROBES = 8
# Each probe holds its worker's only thread this long, so that the scheduler has a
# ready probe and an idle worker at the same time (not a timing assertion).
PROBE_SECONDS = 0.2
PROBE_CODE = f"""
import os, time
import distributed
time.sleep({PROBE_SECONDS})
result = {{
    "worker": distributed.get_worker().address,
    "netns": os.readlink("/proc/self/ns/net"),
}}
"""


def skip_unless_available() -> None:
    """Skip the test where test hosts cannot be made (not root, no ``ip netns``)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster() -> Iterator[NetnsCluster]:
    """The scheduler and two workers on three test hosts, for this module's tests."""
    skip_unless_available()
    with netns_cluster(workers=2) as running:
        yield running


def probe(_: int) -> dict[str, str]:
    """Where this task ran: the worker's address and the kernel's network namespace."""
    time.sleep(PROBE_SECONDS)
    return {
        "worker": distributed.get_worker().address,
        "netns": os.readlink("/proc/self/ns/net"),
    }


def host_of(address: str) -> str:
    """The IP address in a dask address like ``tcp://10.213.7.3:40647``."""
    return urlsplit(address).hostname or ""


def assert_ran_on_both_workers(cluster: NetnsCluster, reports: list[dict[str, Any]]) -> None:
    """Every report comes from a worker host, and both worker hosts (two distinct network
    namespaces, neither this process's) appear."""
    hosts = {host_of(report["worker"]) for report in reports}
    assert hosts == {host.address for host in cluster.worker_hosts}
    kernel_namespaces = {report["netns"] for report in reports}
    assert len(kernel_namespaces) == 2
    assert os.readlink("/proc/self/ns/net") not in kernel_namespaces


def test_hosts_reach_only_their_subnet(cluster: NetnsCluster) -> None:
    subnet = ipaddress.ip_interface(f"{cluster.client_address}/24").network
    for host in (cluster.scheduler_host, *cluster.worker_hosts):
        (route,) = routes(host)
        assert route.startswith(f"{subnet} dev eth0")
        assert routable(host, cluster.client_address)
        assert routable(host, cluster.scheduler_host.address)
        assert not routable(host, "192.0.2.1")  # a documentation address, outside


def test_client_tasks_run_on_both_worker_hosts(cluster: NetnsCluster) -> None:
    with distributed.Client(cluster.scheduler_address) as client:
        workers = client.scheduler_info()["workers"]
        assert {host_of(address) for address in workers} == {
            host.address for host in cluster.worker_hosts
        }
        reports = client.gather(client.map(probe, range(PROBES), pure=False))
    assert_ran_on_both_workers(cluster, reports)


def test_workflow_nodes_run_on_both_worker_hosts(cluster: NetnsCluster) -> None:
    dask_runtime = pytest.importorskip("kailash_nb.runtime.dask")
    builder = WorkflowBuilder()
    for index in range(PROBES):
        builder.add_node("PythonCodeNode", f"probe_{index}", {"code": PROBE_CODE})
    # The collector depends on every probe: it receives probe_i's report as ``probe_i``.
    probes = ", ".join(f"probe_{index}" for index in range(PROBES))
    collect = f"result = sorted({{report['worker'] for report in [{probes}]}})"
    builder.add_node("PythonCodeNode", "collect", {"code": collect})
    for index in range(PROBES):
        builder.add_connection(f"probe_{index}", "result", "collect", f"probe_{index}")

    with dask_runtime.DaskRuntime(address=cluster.scheduler_address) as runtime:
        results, _ = runtime.execute(builder.build())

    reports = [results[f"probe_{index}"]["result"] for index in range(PROBES)]
    assert_ran_on_both_workers(cluster, reports)
    assert results["collect"]["result"] == sorted({report["worker"] for report in reports})


def test_a_failing_test_leaves_no_hosts_links_or_processes() -> None:
    skip_unless_available()
    links_before = set(links())
    failure = "the failure under test"
    with pytest.raises(RuntimeError, match=failure), netns_cluster(workers=1) as small:
        hosts = (small.scheduler_host, *small.worker_hosts)
        started = [pid for host in hosts for pid in pids(host)]
        bridge_links = [name for name in links() if name not in links_before]
        assert len(started) >= 2 and bridge_links
        raise RuntimeError(failure)
    assert not {host.namespace for host in hosts} & set(namespaces())
    assert not set(bridge_links) & set(links())
    assert not [pid for pid in started if alive(pid)]
