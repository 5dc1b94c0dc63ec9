"""Test hosts on this machine: network namespaces joined by a private bridge, with a dask
scheduler on one host and a single-threaded dask worker on each of the others.

``netns_cluster()`` builds everything for one test module and tears it all down on exit,
failure included: processes killed, namespaces, bridge and veth pairs deleted. The hosts
reach each other and the test process (the dask client, in the root namespace, with the
bridge's address) and nothing else: no NAT, no default route. Needs root and ``ip netns``;
``unavailable_reason()`` says why not when they are missing.

Names carry the pytest process id (``knbt<pid>...``); a session that was killed before its
teardown leaves namespaces whose pid is gone, removed by the next session's setup.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import select
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

# Interface names are at most 15 characters: prefix (4) + pid (<= 7) + the cluster's
# letter within the session (1) + suffix (<= 3).
PREFIX = "knbt"
_cluster_letters = itertools.cycle(string.ascii_lowercase)
SCHEDULER_PORT = 8786
# Private /24s tried in turn; the first not on this machine's addresses or routes is used.
SUBNETS = [ipaddress.ip_network(f"10.213.{third}.0/24") for third in range(1, 255)]
# Where the test modules live: workers import them as a real cluster imports installed code.
TESTS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class NetnsHost:
    """One test host: a network namespace (``namespace``) and its address on the subnet."""

    namespace: str
    address: str


@dataclass(frozen=True)
class NetnsCluster:
    """A running dask cluster across test hosts: the scheduler's host and address
    (``tcp://ip:port``), the worker hosts, and the client's own address on the subnet."""

    scheduler_host: NetnsHost
    scheduler_address: str
    worker_hosts: tuple[NetnsHost, ...]
    client_address: str


def unavailable_reason() -> str | None:
    """Why test hosts cannot be made here (not root, no ``ip``, namespaces refused),
    or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (this test creates them with `ip netns`)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}-{os.getpid()}-probe"
    added = _ip("netns", "add", probe, check=False)
    if added.returncode != 0:
        return f"`ip netns add` failed here: {added.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@contextmanager
def netns_cluster(workers: int = 2, timeout: float = 60) -> Iterator[NetnsCluster]:
    """Start a scheduler and ``workers`` single-threaded workers, each on its own test
    host, and yield once every worker has registered with the scheduler.

    Raises ValueError for ``workers`` outside 1..8 (interface names have at most 15 characters),
    RuntimeError (with the processes' logs) when the cluster does not come up within
    ``timeout`` seconds.
    """
    if not 1 <= workers <= 8:
        raise ValueError(f"workers must be 1 to 8, not {workers}")
    _remove_stale()
    letter = next(_cluster_letters)
    tag = f"{PREFIX}{os.getpid()}{letter}"
    subnet = _free_subnet()
    addresses = [str(ip) for ip in subnet.hosts()]
    with tempfile.TemporaryDirectory(prefix=f"{tag}-") as logs, ExitStack() as undo:
        bridge = f"{tag}br"
        _ip("link", "add", bridge, "type", "bridge")
        undo.callback(_ip, "link", "del", bridge, check=False)
        _ip("addr", "add", f"{addresses[0]}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")

        hosts = []
        for index in range(workers + 1):
            host = NetnsHost(f"{PREFIX}-{os.getpid()}{letter}-{index}", addresses[index + 1])
            _add_host(host, f"{tag}h{index}", bridge, subnet.prefixlen, undo)
            hosts.append(host)
        scheduler_host, *worker_hosts = hosts
        scheduler_address = f"tcp://{scheduler_host.address}:{SCHEDULER_PORT}"

        processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        undo.callback(_stop_all, processes)
        scheduler = ["distributed.cli.dask_scheduler", "--host", scheduler_host.address]
        scheduler += ["--port", str(SCHEDULER_PORT), "--no-dashboard"]
        processes.append(("scheduler", _start(scheduler_host, scheduler, logs, "scheduler")))
        for number, host in enumerate(worker_hosts, start=1):
            name = f"worker-{number}"
            worker = _worker_args(scheduler_address, host, name, Path(logs, name))
            processes.append((name, _start(host, worker, logs, name)))

        try:
            _wait_until_up(scheduler_address, workers, processes, timeout)
        except Exception as error:
            raise RuntimeError(
                f"the test cluster did not come up: {error}\n{_report(processes, logs)}"
            ) from error
        yield NetnsCluster(scheduler_host, scheduler_address, tuple(worker_hosts), addresses[0])


def namespaces() -> list[str]:
    """The names of all network namespaces on this machine."""
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line]


def links() -> list[str]:
    """The names of the network interfaces of the root namespace."""
    return re.findall(r"^\d+: ([^:@]+)", _ip("-o", "link", "show").stdout, re.MULTILINE)


def pids(host: NetnsHost) -> list[int]:
    """The processes running in ``host``'s namespace."""
    return [int(pid) for pid in _ip("netns", "pids", host.namespace).stdout.split()]


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def routable(host: NetnsHost, address: str) -> bool:
    """Whether ``host`` has a route to ``address`` (the kernel's answer, nothing sent)."""
    return _ip("-n", host.namespace, "route", "get", address, check=False).returncode == 0


def routes(host: NetnsHost) -> list[str]:
    """The IPv4 routing table of ``host``, one route a line."""
    return _ip("-4", "-n", host.namespace, "route", "show").stdout.splitlines()


def _wait_until_up(
    address: str, workers: int, processes: list[tuple[str, subprocess.Popen[bytes]]], timeout: float
) -> None:
    """Return once ``workers`` workers have registered with the scheduler at ``address``;
    raise as soon as one of ``processes`` exits, or after ``timeout`` seconds."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    client = None
    try:
        while True:
            exited = [name for name, process in processes if process.poll() is not None]
            if exited:
                raise RuntimeError(f"{', '.join(exited)} exited while starting")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not {workers} workers registered within {timeout} s")
            # Waits of at most a second each, to notice a process that exits meanwhile.
            step = min(1.0, remaining)
            try:
                if client is None:
                    client = Client(address, timeout=step)
                client.wait_for_workers(workers, timeout=step)
                return
            except (OSError, TimeoutError):
                continue
    finally:
        if client is not None:
            client.close()


def _add_host(host: NetnsHost, link: str, bridge: str, prefixlen: int, undo: ExitStack) -> None:
    """Create ``host``'s namespace with loopback up and one veth pair: ``link`` on the
    bridge, its peer ``eth0`` in the namespace with the host's address."""
    _ip("netns", "add", host.namespace)
    undo.callback(_delete_namespace, host.namespace)
    peer = f"{link}p"
    _ip("link", "add", link, "type", "veth", "peer", "name", peer)
    # Deleting the namespace deletes the peer, which deletes this end with it; this is
    # for a failure before the peer has moved.
    undo.callback(_ip, "link", "del", link, check=False)
    _ip("link", "set", link, "master", bridge, "up")
    _ip("link", "set", peer, "netns", host.namespace)
    in_host = ["-n", host.namespace]
    _ip(*in_host, "link", "set", "lo", "up")
    _ip(*in_host, "link", "set", peer, "name", "eth0")
    _ip(*in_host, "addr", "add", f"{host.address}/{prefixlen}", "dev", "eth0")
    _ip(*in_host, "link", "set", "eth0", "up")


def _worker_args(scheduler: str, host: NetnsHost, name: str, directory: Path) -> list[str]:
    """The ``python -m`` arguments of a single-threaded worker on ``host``."""
    return [
        "distributed.cli.dask_worker",
        scheduler,
        *("--host", host.address, "--name", name, "--local-directory", str(directory)),
        *("--nthreads", "1", "--nworkers", "1", "--no-dashboard"),
        # A worker whose scheduler is gone stops by itself.
        *("--death-timeout", "30"),
    ]


def _start(
    host: NetnsHost, module_args: list[str], logs: str, name: str
) -> subprocess.Popen[bytes]:
    """Run ``python -m module_args...`` (this interpreter) inside ``host``'s namespace,
    in its own process group, output to ``name.log`` in ``logs``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(TESTS_DIR), env.get("PYTHONPATH", "")) if part
    )
    with Path(logs, f"{name}.log").open("wb") as output:
        return subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, sys.executable, "-m", *module_args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _stop_all(processes: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """Stop every process group: SIGTERM, then SIGKILL for any still running after 10 s."""
    for _, process in processes:
        _signal_group(process, signal.SIGTERM)
    for _, process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
        # A nanny's worker may outlive the nanny for a moment; the group outlives both.
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _delete_namespace(namespace: str) -> None:
    """Kill whatever still runs in ``namespace`` (a namespace outlives its deletion while
    a process is inside it) and wait for it to end, then delete the namespace."""
    for pid in _ip("netns", "pids", namespace, check=False).stdout.split():
        _kill_and_wait(int(pid))
    _ip("netns", "del", namespace, check=False)


def _kill_and_wait(pid: int, timeout: float = 10) -> None:
    """SIGKILL ``pid`` and wait until it has ended: not a child of ours, so through a
    pidfd, which becomes readable when the process exits."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


def _remove_stale() -> None:
    """Delete namespaces and bridges left by sessions whose process is gone."""
    for line in _ip("netns", "list").stdout.splitlines():
        found = re.match(rf"({PREFIX}-(\d+)[a-z]?-\S+)", line)
        if found and not alive(int(found[2])):
            _delete_namespace(found[1])
    for line in _ip("-o", "link", "show", "type", "bridge").stdout.splitlines():
        found = re.match(rf"\d+: ({PREFIX}(\d+)[a-z]br)\b", line)
        if found and not alive(int(found[2])):
            _ip("link", "del", found[1], check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    """The first of ``SUBNETS`` that overlaps none of this machine's addresses and routes."""
    used = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        used += [ipaddress.ip_interface(cidr).network for cidr in re.findall(r"inet (\S+)", line)]
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        # A route's destination is its first or, after a type ("local", ...), second word.
        for word in line.split()[:2]:
            try:
                used.append(ipaddress.ip_network(word, strict=False))
                break
            except ValueError:
                continue
    start = os.getpid() % len(SUBNETS)  # concurrent sessions start at different subnets
    for subnet in SUBNETS[start:] + SUBNETS[:start]:
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise RuntimeError("no free 10.213.x.0/24 subnet for the test hosts")


def _report(processes: list[tuple[str, subprocess.Popen[bytes]]], logs: str) -> str:
    """Each process's state and the end of its log, for a cluster that did not come up."""
    parts = []
    for name, process in processes:
        state = "running" if process.poll() is None else f"exited {process.returncode}"
        tail = Path(logs, f"{name}.log").read_text(errors="replace")[-2000:]
        parts.append(f"--- {name} ({state}) ---\n{tail}")
    return "\n".join(parts)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip args...``; with ``check``, raise RuntimeError carrying its stderr on failure."""
    completed = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and completed.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {completed.stderr.strip()}")
    return completed
