"""Everyday commands against a running Prefect server vs a temporary one (issue 11, item 4).

Times, as whole processes (`uv run` start-up included), in one run on this machine:
1. `datasynth generate` on a dataset that is already complete (nothing to generate: the command
   is all overhead) with a temporary server (no PREFECT_API_URL, nothing on 127.0.0.1:4200)
   against the same command with `PREFECT_API_URL` pointing at a running `datasynth server`;
   interleaved rounds, medians, and their ratio (target: at most 0.3);
2. a cached rerun of `datasynth demo` against the running server (target: at most 15 s).

    uv run python bench/bench_server_reuse.py [--rounds 3] [--work DIR]

Prints a markdown table for docs/BENCHMARKS.md and the load before and after.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATION_CONFIG = "configs/tiny-generation.toml"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


def _timed(cmd: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-demo", action="store_true", help="only the `generate` ratio")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-server-"))
    work.mkdir(parents=True, exist_ok=True)
    if _healthy("http://127.0.0.1:4200/api"):
        sys.exit("a server answers on 127.0.0.1:4200: stop it, the temporary-server runs need none")

    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    base |= {"PREFECT_HOME": str(work / "prefect-home"), "HF_HUB_OFFLINE": "1"}
    base["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    running = base | {"PREFECT_API_URL": api}
    dataset = work / "dataset"
    generate = ["uv", "run", "datasynth", "generate", GENERATION_CONFIG, "--out", str(dataset)]
    demo = ["uv", "run", "datasynth", "demo", "--out", str(work / "demo")]
    load_before = _load()

    server_log = (work / "server.log").open("w")
    server = subprocess.Popen(
        ["uv", "run", "datasynth", "server", "--port", str(port)],
        cwd=REPO,
        env=base,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    try:
        started = time.perf_counter()
        while not _healthy(api):
            if server.poll() is not None or time.perf_counter() - started > 180:
                sys.exit(f"the server did not start: see {work / 'server.log'}")
            time.sleep(0.5)
        server_start = time.perf_counter() - started

        _timed(generate, running, work / "generate-fill.log")  # make the dataset complete
        temporary, reused = [], []
        for i in range(args.rounds):
            temporary.append(_timed(generate, base, work / f"generate-temporary-{i}.log"))
            reused.append(_timed(generate, running, work / f"generate-running-{i}.log"))
        if not args.no_demo:
            demo_first = _timed(demo, running, work / "demo-first.log")
            demo_rerun = _timed(demo, running, work / "demo-rerun.log")
    finally:
        server.terminate()
        server.wait(timeout=60)

    t_med, r_med = statistics.median(temporary), statistics.median(reused)
    cores = os.cpu_count()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"{cores} cores, OMP_NUM_THREADS={threads}, load before {load_before}, after {_load()}")
    print(f"`datasynth server` start to /health: {server_start:.1f} s (once, not in the ratios)")
    print()
    print("| command | temporary server s (median) | running server s (median) | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| `generate` on a complete dataset ({args.rounds} rounds, interleaved) "
        f"| {t_med:.1f} | {r_med:.1f} | {r_med / t_med:.2f} |"
    )
    if not args.no_demo:
        print()
        print(
            f"`demo` against the running server: first run {demo_first:.1f} s, cached rerun "
            f"{demo_rerun:.1f} s"
        )
    print(
        f"all runs: temporary {[round(t, 1) for t in temporary]}, "
        f"running {[round(t, 1) for t in reused]}; logs in {work}"
    )


if __name__ == "__main__":
    main()
