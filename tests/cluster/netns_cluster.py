#!/usr/bin/env python3
"""A small cluster inside one machine: N network namespaces ("nodes") joined by
veth pairs through a bridge, each node with its own address in a private
subnet, and an Open MPI launch agent that starts each host's daemon inside
that host's namespace.

    with NetnsCluster(2) as c:
        subprocess.run(c.in_node(0, ["mpirun", *c.mpirun_args(), "-np", "2", prog]))
        c.link_down(1)        # node 1's cable pulled
        c.kill_node(1)        # node 1 powered off (every process in it killed)

Topology (nothing is added to the machine's own network namespace):

    <prefix>-hub   bridge br0, no address: the "switch"
    <prefix>-n<i>  lo + eth0 = 10.213.7.(i+1)/24, the other end of eth0's
                   veth pair is <prefix>-h<i> on the hub's bridge

The subnet exists only inside these namespaces; nothing routes it anywhere
else. Open MPI is told to use TCP between nodes (`--mca btl tcp,self`, no
shared memory) on that subnet only, for both its messages and its out-of-band
launch channel, so every byte between ranks crosses the veth pairs.

Namespaces are named after the creating process (`mlc<pid>-…`): teardown
kills every process left in them and deletes them, on success, on an
exception and on SIGTERM/SIGINT; namespaces of a creator that no longer runs
(a harness killed with SIGKILL) are removed by the next harness that starts.

Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2. `permitted()` tells
whether this machine allows it; the tests skip with its reason otherwise.

Command line (used by docs/training.md's multi-node section):
    netns_cluster.py check                 can this machine build a cluster?
    netns_cluster.py run --nodes N -- CMD  runs CMD inside node 0 with
        MLA_CLUSTER_HOSTFILE and MLA_CLUSTER_MPI_ARGS set (see cpu-cluster.sh)
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.path.join(HERE, "netns-agent.sh")
SUBNET = "10.213.7"
PREFIX_RE = re.compile(r"^mlc(\d+)-")


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def permitted():
    """(True, "") when network namespaces and veth pairs can be made here,
    else (False, reason)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    try:
        probe = f"mlc{os.getpid()}-probe"
        r = _ip("netns", "add", probe, check=False)
        if r.returncode != 0:
            return False, f"'ip netns add' is not permitted here: {r.stderr.strip()}"
        r = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
                check=False)
        _ip("netns", "del", probe, check=False)
        if r.returncode != 0:
            return False, f"veth pairs are not permitted here: {r.stderr.strip()}"
    except FileNotFoundError:
        return False, "iproute2 ('ip') is not installed"
    return True, ""


def _netns_names():
    r = _ip("netns", "list", check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _kill_and_delete(ns):
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", ns, check=False)


def remove_stale():
    """Deletes namespaces left by harnesses whose process is gone."""
    for ns in _netns_names():
        m = PREFIX_RE.match(ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _kill_and_delete(ns)


class NetnsCluster:
    def __init__(self, nodes, slots=1):
        if not 1 <= nodes <= 8:
            raise ValueError(f"nodes must be in [1, 8], got {nodes}")
        self.nodes = nodes
        self.slots = slots
        self.prefix = f"mlc{os.getpid()}"
        self.hub = f"{self.prefix}-hub"
        self.made = []
        self.dir = None
        self._old_handlers = {}

    # ---- lifecycle
    def __enter__(self):
        remove_stale()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            self._create()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    def _on_signal(self, signum, frame):
        self.teardown()
        raise SystemExit(128 + signum)

    def _create(self):
        self.dir = tempfile.mkdtemp(prefix="mla-cluster-")
        self._add_ns(self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        with open(self.map_path, "w") as m, open(self.hostfile, "w") as h:
            for i in range(self.nodes):
                ns = self.node_ns(i)
                self._add_ns(ns)
                _ip("link", "add", self.hub_end(i), "netns", self.hub, "type", "veth",
                    "peer", "name", "eth0", "netns", ns)
                _ip("-n", self.hub, "link", "set", self.hub_end(i), "master", "br0")
                _ip("-n", self.hub, "link", "set", self.hub_end(i), "up")
                _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                m.write(f"{self.address(i)} {ns}\n")
                h.write(f"{self.address(i)} slots={self.slots}\n")

    def _add_ns(self, ns):
        _ip("netns", "add", ns)
        self.made.append(ns)

    def teardown(self):
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}
        for ns in reversed(self.made):
            _kill_and_delete(ns)
        self.made = []
        if self.dir:
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            os.rmdir(self.dir)
            self.dir = None

    # ---- names
    def node_ns(self, i):
        return f"{self.prefix}-n{i}"

    def hub_end(self, i):
        return f"{self.prefix}-h{i}"

    @staticmethod
    def address(i):
        return f"{SUBNET}.{i + 1}"

    @property
    def map_path(self):
        return os.path.join(self.dir, "hosts.map")

    @property
    def hostfile(self):
        return os.path.join(self.dir, "hostfile")

    # ---- use
    def mpirun_args(self):
        """mpirun flags for this cluster: its hostfile, the launch agent, TCP
        only (no shared memory between nodes) on the private subnet."""
        args = ["--hostfile", self.hostfile,
                "--mca", "plm_rsh_agent", AGENT,
                "--mca", "pml", "ob1", "--mca", "btl", "tcp,self",
                "--mca", "btl_tcp_if_include", f"{SUBNET}.0/24",
                "--mca", "oob_tcp_if_include", f"{SUBNET}.0/24"]
        if os.geteuid() == 0:
            args.append("--allow-run-as-root")
        return args

    def env(self, base=None):
        """Environment for a command run in node 0: the agent's host map, and
        the hostfile / mpirun flags for recipes/cluster/cpu-cluster.sh."""
        e = dict(os.environ if base is None else base)
        e["MLA_CLUSTER_MAP"] = self.map_path
        e["MLA_CLUSTER_HOSTFILE"] = self.hostfile
        e["MLA_CLUSTER_MPI_ARGS"] = " ".join(a for a in self.mpirun_args()
                                             if a not in ("--hostfile", self.hostfile))
        return e

    def in_node(self, i, cmd):
        return ["ip", "netns", "exec", self.node_ns(i), *cmd]

    def link_down(self, i):
        _ip("-n", self.hub, "link", "set", self.hub_end(i), "down")

    def link_up(self, i):
        _ip("-n", self.hub, "link", "set", self.hub_end(i), "up")

    def node_pids(self, i):
        return [int(p) for p in _ip("netns", "pids", self.node_ns(i), check=False).stdout.split()]

    def kill_node(self, i):
        for pid in self.node_pids(i):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("check", help="say whether this machine can build the cluster")
    run = sub.add_parser("run", help="run a command in node 0 of a fresh cluster")
    run.add_argument("--nodes", type=int, default=2, help="number of nodes (1-8)")
    run.add_argument("--slots", type=int, default=1, help="MPI slots per node")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    a = ap.parse_args()
    ok, why = permitted()
    if a.what == "check":
        print("network namespaces: " + ("available" if ok else f"not available ({why})"))
        return 0 if ok else 77
    if not ok:
        print(f"netns_cluster: {why}", file=sys.stderr)
        return 77
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("run needs a command after --")
    with NetnsCluster(a.nodes, a.slots) as c:
        print(f"netns_cluster: {a.nodes} nodes {', '.join(c.address(i) for i in range(a.nodes))}"
              f", hostfile {c.hostfile}", file=sys.stderr, flush=True)
        return subprocess.run(c.in_node(0, cmd), env=c.env()).returncode


if __name__ == "__main__":
    sys.exit(main())
