#!/usr/bin/env python3
"""Measures gradient communication between two "nodes" of the namespace
cluster (tests/cluster/netns_cluster.py, TCP over veth) and between two ranks
on one host (Open MPI's shared-memory transport), and compares the TCP
figures with the model of docs/communication.md.

For each model shape (the quickstart recipe and the paper shape):
  1. mla-train runs a few steps on 2 nodes and on 1 host x 2 ranks; the
     parameter count comes from its start-up line, the share of step time
     spent waiting for gradient all-reduces from metrics.jsonl (comm_share,
     median over the steps after the first);
  2. the gradient buffer (4 bytes per parameter) is cut into the trainer's
     25 MiB buckets, and mla-bench-comm times an all-reduce of each bucket
     size and the whole bucketed GradientReducer, on both paths;
  3. the prediction for the TCP path: the ring all-reduce of S bytes over N
     ranks moves 2(N-1)/N * S per rank, so the model of docs/communication.md
     is t = 2(N-1)/N * S / B + 2(N-1) * a, with B the per-direction TCP
     bandwidth while both directions stream (measured here between the two
     namespaces with plain sockets) and a the one-way small-message latency
     (half a measured round trip). On a network as fast as memory the
     reduction itself is not free: each rank adds (N-1)/N * S bytes of
     incoming data into its buffer, at the rate R of a single-core float32
     `a += b` (measured here), so the corrected model adds (N-1)/N * S / R.

Writes a markdown table on stdout and, with --out, the figures as JSON.
Measure on a quiet machine (nothing else running); the load average is
printed with the table.

    /usr/bin/python3 tests/cluster/measure_comm.py --build build --out comm.json
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netns_cluster  # noqa: E402

SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
BUCKET_MIB = 25.0
MPI_LOCAL = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])

# Model flags of each shape (the rest of the training flags are the quickstart
# recipe's); the paper shape trains with a small global batch to keep the
# steps short: it changes the compute per step, not the gradient size.
SHAPES = {
    "quickstart": [],
    "paper": ["--n_layer=9", "--d_model=512", "--n_head=8", "--context_length=512",
              "--kv_rank=256", "--rope_dim=32", "--global_batch_tokens=1024", "--micro_batch=1"],
}

PEER = r"""
import socket, sys, threading
mode, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port)); srv.listen(1)
print("ready", flush=True)
c, _ = srv.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "pingpong":
    for _ in range(size):
        c.sendall(c.recv(8))
else:
    buf = bytearray(1 << 20)
    def sink():
        left = size
        while left > 0:
            left -= c.recv_into(buf)
    t = threading.Thread(target=sink); t.start()
    if mode == "both":
        chunk = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            c.sendall(chunk)
    t.join()
"""


def run_peer(cluster, mode, port, size):
    p = subprocess.Popen(cluster.in_node(1, [sys.executable, "-c", PEER, mode, str(port),
                                             str(size)]), stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def tcp_figures(cluster, mib=512, pings=2000):
    """Per-direction bandwidth with both directions streaming, and one-way
    latency (half the median round trip of 8-byte messages), node 0 <-> 1."""
    size = mib << 20
    code = r"""
import socket, sys, threading, time
host, port, size, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.create_connection((host, port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "pingpong":
    rt = []
    for _ in range(size):
        t0 = time.perf_counter(); s.sendall(b"12345678"); n = 0
        while n < 8: n += len(s.recv(8 - n))
        rt.append(time.perf_counter() - t0)
    rt.sort(); print(rt[len(rt) // 2])
else:
    buf = bytearray(1 << 20)
    def sink():
        left = size
        while left > 0: left -= s.recv_into(buf)
    t0 = time.perf_counter()
    t = threading.Thread(target=sink); t.start()
    chunk = b"\0" * (1 << 20)
    for _ in range(size >> 20): s.sendall(chunk)
    t.join()
    print(time.perf_counter() - t0)
"""
    out = {}
    peer = run_peer(cluster, "both", 7301, size)
    t = float(subprocess.run(cluster.in_node(0, [sys.executable, "-c", code, cluster.address(1),
                                                 "7301", str(size), "both"]),
                             capture_output=True, text=True, check=True).stdout)
    peer.wait(timeout=60)
    out["bandwidth_GBps"] = size / t / 1e9
    peer = run_peer(cluster, "pingpong", 7302, pings)
    rt = float(subprocess.run(cluster.in_node(0, [sys.executable, "-c", code, cluster.address(1),
                                                  "7302", str(pings), "pingpong"]),
                              capture_output=True, text=True, check=True).stdout)
    peer.wait(timeout=60)
    out["latency_us"] = rt / 2 * 1e6
    return out


def reduce_rate(mib=25, repeats=7):
    """Bytes of one operand per second of a float32 in-place add (one core)."""
    import numpy as np
    a = np.ones(mib << 18, dtype=np.float32)
    b = np.ones_like(a)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a += b
        times.append(time.perf_counter() - t0)
    return a.nbytes / sorted(times)[len(times) // 2]


def buckets(total_mib):
    out, left = [], total_mib
    while left > BUCKET_MIB:
        out.append(BUCKET_MIB)
        left -= BUCKET_MIB
    out.append(left)
    return out


def bench_comm(cmd_prefix, env, sizes, gradient_mib, build):
    cmd = cmd_prefix + [os.path.join(build, "optim", "mla-bench-comm"),
                        "--sizes_mib=" + ",".join(f"{s:.4f}" for s in sorted(set(sizes))),
                        f"--gradient_mib={gradient_mib:.4f}", f"--bucket_mb={BUCKET_MIB}",
                        "--iters=7", "--warmup=2", "--adamw_params=0"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stdout}\n{p.stderr}")
    rows = {}
    for line in p.stdout.splitlines():
        m = re.match(r"(AllReduce\(sum\)|GradientReducer\S*)\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            key = "reducer" if m.group(1).startswith("Gradient") else round(float(m.group(2)), 2)
            rows[key] = float(m.group(3))
    return rows


def train(cmd_prefix, env, build, data, out_dir, shape_flags, steps):
    cmd = cmd_prefix + [os.path.join(build, "launch", "mla-train"),
                        f"--flagfile={SOURCE}/recipes/cpu/quickstart.flags",
                        f"--train_data={data}/train.bin", f"--val_data={data}/val.bin",
                        f"--tokenizer={data}/tokenizer.model", f"--out_dir={out_dir}",
                        f"--steps={steps}", "--log_interval=1", "--eval_interval=0",
                        "--eval_batches=1", "--ckpt_every=0", "--threads=1", *shape_flags]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stdout}\n{p.stderr}")
    params = int(re.search(r"(\d+) parameters", p.stdout).group(1))
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        rows = [json.loads(l) for l in f if '"comm_share"' in l]
    shares = [r["comm_share"] for r in rows if r["step"] > 1]
    return params, statistics.median(shares)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"), help="build directory")
    ap.add_argument("--steps", type=int, default=6, help="training steps per overlap run")
    ap.add_argument("--out", default="", help="write the figures as JSON here")
    a = ap.parse_args()
    ok, why = netns_cluster.permitted()
    if not ok:
        print(f"measure_comm: {why}", file=sys.stderr)
        return 77
    build = os.path.abspath(a.build)
    tmp = tempfile.mkdtemp(prefix="mla-comm-")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = {"load_average_before": os.getloadavg()[0], "shapes": {}}
    try:
        data = os.path.join(tmp, "data")
        subprocess.run([os.path.join(build, "tools", "mla-data", "mla-data"), "all", "--count",
                        "3000", "--vocab_size", "512", "--out", data], check=True,
                       capture_output=True)
        with netns_cluster.NetnsCluster(2) as c:
            tcp = tcp_figures(c)
            tcp["reduce_GBps"] = reduce_rate() / 1e9
            result["tcp"] = tcp
            cenv = c.env(env)
            # The "hosts" share this machine's cores: binding each rank to its
            # host's first core would put both ranks on core 0.
            cluster_mpi = ["mpirun", *c.mpirun_args(), "--bind-to", "none", "-np", "2"]
            local_mpi = ["mpirun", *MPI_LOCAL, "-np", "2"]
            for name, flags in SHAPES.items():
                r = {}
                r["params"], r["comm_share_tcp"] = train(
                    c.in_node(0, cluster_mpi), cenv, build, data, os.path.join(tmp, name + "-tcp"),
                    flags, a.steps)
                _, r["comm_share_shm"] = train(local_mpi, env, build, data,
                                               os.path.join(tmp, name + "-shm"), flags, a.steps)
                grad_mib = r["params"] * 4 / 2**20
                r["gradient_mib"] = grad_mib
                r["buckets_mib"] = buckets(grad_mib)
                r["tcp_ms"] = bench_comm(c.in_node(0, cluster_mpi), cenv, r["buckets_mib"],
                                         grad_mib, build)
                r["shm_ms"] = bench_comm(local_mpi, env, r["buckets_mib"], grad_mib, build)
                n = 2
                b = tcp["bandwidth_GBps"] * 1e9
                lat = tcp["latency_us"] * 1e-6
                red = tcp["reduce_GBps"] * 1e9
                r["model_tcp_ms"] = {
                    round(s, 2): (2 * (n - 1) / n * s * 2**20 / b + 2 * (n - 1) * lat) * 1e3
                    for s in r["buckets_mib"]}
                r["predicted_tcp_ms"] = {
                    k: v + (n - 1) / n * k * 2**20 / red * 1e3
                    for k, v in r["model_tcp_ms"].items()}
                result["shapes"][name] = r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_average_after"] = os.getloadavg()[0]

    t = result["tcp"]
    print(f"TCP between nodes: {t['bandwidth_GBps']:.2f} GB/s per direction (both streaming), "
          f"{t['latency_us']:.0f} us one-way; float32 a += b at {t['reduce_GBps']:.2f} GB/s; "
          f"load average {result['load_average_before']:.2f} "
          f"before, {result['load_average_after']:.2f} after\n")
    print("| shape | params | all-reduce of | model ms (network only) | model + reduction ms | "
          "measured TCP ms | measured / (model + reduction) | shared memory ms | "
          "comm share of step, TCP | same, shared memory |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in result["shapes"].items():
        first = True
        for s in sorted(set(round(x, 2) for x in r["buckets_mib"])):
            pred, tcp_ms, shm_ms = r["predicted_tcp_ms"][s], r["tcp_ms"][s], r["shm_ms"][s]
            net = r["model_tcp_ms"][s]
            tail = (f"{r['comm_share_tcp']:.1%} | {r['comm_share_shm']:.1%}" if first else " | ")
            print(f"| {name if first else ''} | {r['params'] if first else ''} | "
                  f"{s:.2f} MiB bucket | {net:.2f} | {pred:.2f} | {tcp_ms:.2f} | {tcp_ms / pred:.2f} | "
                  f"{shm_ms:.2f} | {tail} |")
            first = False
        pred_total = sum(r["predicted_tcp_ms"][round(s, 2)] for s in r["buckets_mib"])
        net_total = sum(r["model_tcp_ms"][round(s, 2)] for s in r["buckets_mib"])
        print(f"|  |  | whole gradient {r['gradient_mib']:.2f} MiB (GradientReducer) | "
              f"{net_total:.2f} | {pred_total:.2f} | {r['tcp_ms']['reducer']:.2f} | "
              f"{r['tcp_ms']['reducer'] / pred_total:.2f} | {r['shm_ms']['reducer']:.2f} |  |  |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
