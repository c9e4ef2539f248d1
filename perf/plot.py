"""Pictures of a perf/run.sh run, from the medians it writes with
RESULTS_CSV=file.csv:

    python3 perf/plot.py results.csv [OUT_DIR]

For each scenario, CPU per request (user and system stacked) and requests/s
against the connection count, one line or bar group per proxy; and, when the
run has several body sizes of one kind (tiny, 16k, 1m), the same against the
body size. PNG files go next to the CSV (or to OUT_DIR). Needs matplotlib
(`python3 -m venv v && v/bin/pip install matplotlib`).
"""

import csv
import os
import sys
from collections import defaultdict

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("perf/plot.py needs matplotlib: python3 -m venv v && v/bin/pip install matplotlib")

# Body sizes of the plain scenarios, for the plot against size.
SIZES = {"tiny": 100, "16k": 16384, "1m": 1 << 20}
ORDER = ["ringway-uring", "ringway-epoll", "nginx", "haproxy", "floor-default", "floor-flagged"]


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def load(path):
    rows = defaultdict(dict)  # scenario -> (conns, proxy) -> row
    for r in csv.DictReader(open(path)):
        rows[r["scenario"]][(int(r["conns"]), r["proxy"])] = r
    return rows


def proxies_of(rows):
    seen = {p for (_, p) in rows}
    return [p for p in ORDER if p in seen] + sorted(seen - set(ORDER))


def against_conns(name, rows, out):
    conns = sorted({c for (c, _) in rows})
    proxies = proxies_of(rows)
    fig, (cpu, rps) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(proxies)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, p in enumerate(proxies):
        color = colors[i % len(colors)]
        xs = [k + i * width for k in range(len(conns))]
        usr = [num(rows.get((c, p), {}).get("usr_us", "")) or 0 for c in conns]
        sys_ = [num(rows.get((c, p), {}).get("sys_us", "")) or 0 for c in conns]
        cpu.bar(xs, usr, width, color=color, label=p)
        cpu.bar(xs, sys_, width, bottom=usr, color=color, alpha=0.4)
        rps.plot(range(len(conns)), [num(rows.get((c, p), {}).get("rps", "")) for c in conns], marker="o", color=color, label=p)
    cpu.set_xticks([k + 0.4 - width / 2 for k in range(len(conns))], [str(c) for c in conns])
    cpu.set_xlabel("connections")
    cpu.set_ylabel("CPU µs per request (user dark, system light)")
    cpu.legend(fontsize=7)
    rps.set_xticks(range(len(conns)), [str(c) for c in conns])
    rps.set_xlabel("connections")
    rps.set_ylabel("requests/s")
    rps.legend(fontsize=7)
    fig.suptitle(f"{name}: CPU per request and requests/s against connections")
    fig.tight_layout()
    path = os.path.join(out, f"{name}-conns.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def against_size(data, out):
    sized = {s: data[s] for s in SIZES if s in data}
    if len(sized) < 2:
        return None
    conns = sorted({c for s in sized.values() for (c, _) in s})
    proxies = proxies_of({k: v for s in sized.values() for k, v in s.items()})
    fig, axes = plt.subplots(len(conns), 2, figsize=(12, 4 * len(conns)), squeeze=False)
    for row, c in enumerate(conns):
        cpu, rps = axes[row]
        for p in proxies:
            xs = [SIZES[s] for s in sized]
            cpu.plot(xs, [num(sized[s].get((c, p), {}).get("cpu_us", "")) for s in sized], marker="o", label=p)
            rps.plot(xs, [num(sized[s].get((c, p), {}).get("rps", "")) for s in sized], marker="o", label=p)
        for ax, label in ((cpu, "CPU µs per request"), (rps, "requests/s")):
            ax.set_xscale("log")
            ax.set_xlabel("response body, bytes")
            ax.set_ylabel(f"{label}, {c} connections")
            ax.legend(fontsize=7)
    fig.suptitle("CPU per request and requests/s against body size")
    fig.tight_layout()
    path = os.path.join(out, "size.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(src))
    os.makedirs(out, exist_ok=True)
    data = load(src)
    for name in sorted(data):
        print(against_conns(name, data[name], out))
    p = against_size(data, out)
    if p:
        print(p)


if __name__ == "__main__":
    main()
