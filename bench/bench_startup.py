"""How fast `clickstream` starts, against how long Python takes to `import typer`, in one run.

Starts its own local stack (`clickstream.stack.local`, on free ports, in a temporary state
directory) and runs, each several times, as a user would (a new process each time):

  ceiling  python -c 'import typer'           what any typer command line pays
  help     clickstream --help
  dry-run  clickstream produce --dry-run --count 1
  produce  clickstream produce --count 1      one event to Kafka, delivered and counted
  status   clickstream status                 the group's lag, the index, the dead letters

and prints the min and median wall time of each, its median CPU time (user + system of the
child), and each as a ratio to the ceiling. Targets: `--help` within 3x the ceiling;
`produce --count 1` at most 0.5 s.

    .venv/bin/python bench/bench_startup.py              # markdown table
    .venv/bin/python bench/bench_startup.py --runs 11 --json

Figures depend on the machine and its load (printed with them): compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clickstream.settings import StackSettings
from clickstream.stack import local as stack

PYTHON = sys.executable
CLICKSTREAM = str(Path(sys.executable).with_name("clickstream"))

COMMANDS: dict[str, list[str]] = {
    "ceiling": [PYTHON, "-c", "import typer"],
    "help": [CLICKSTREAM, "--help"],
    "dry-run": [CLICKSTREAM, "produce", "--dry-run", "--count", "1"],
    "produce": [CLICKSTREAM, "produce", "--count", "1"],
    "status": [CLICKSTREAM, "status"],
}


def shown(command: list[str]) -> str:
    """The command as a user would type it."""
    if command[0] == PYTHON:
        return "python -c 'import typer'"
    return " ".join(["clickstream", *command[1:]])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def local_stack() -> Iterator[dict[str, str]]:
    """A local stack on free ports; yields the environment that points clickstream at it."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as state:
        settings = StackSettings(
            kafka_port=free_port(), opensearch_port=free_port(), state_dir=Path(state)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
        env |= {
            "CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_address(settings),
            "CLICKSTREAM_OPENSEARCH__URL": stack.opensearch_url(settings),
            "CLICKSTREAM_STACK__STATE_DIR": state,
        }
        try:
            stack.up(settings)
            yield env
        finally:
            stack.down(settings)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `command`, which must succeed."""
    cpu, start = children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed: {done.stderr.decode()[-2000:]}")
    return wall, cpu


def measure(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with local_stack() as env, tempfile.TemporaryDirectory(prefix="bench-cwd-") as cwd:
        timed([CLICKSTREAM, "setup"], env, cwd)  # the topics and the index template
        for command in COMMANDS.values():
            timed(command, env, cwd)  # warm the file cache; not counted
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
        for _ in range(runs):  # interleaved, so a burst of load hits every command alike
            for name, command in COMMANDS.items():
                samples[name].append(timed(command, env, cwd))
    ceiling = samples["ceiling"]
    base_min = min(w for w, _ in ceiling)
    base_median = statistics.median(w for w, _ in ceiling)
    for name, runs_of in samples.items():
        walls = [w for w, _ in runs_of]
        results[name] = {
            "command": shown(COMMANDS[name]),
            "runs": len(walls),
            "min_s": round(min(walls), 3),
            "median_s": round(statistics.median(walls), 3),
            "median_cpu_s": round(statistics.median(c for _, c in runs_of), 3),
            "min_ratio": round(min(walls) / base_min, 2),
            "median_ratio": round(statistics.median(walls) / base_median, 2),
        }
    results["load_after"] = os.getloadavg()
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['cpus']} CPUs, load {results['load_before'][0]:.2f} before, "
        f"{results['load_after'][0]:.2f} after",
        "",
        "| command | runs | min s | median s | median CPU s | min / ceiling | median / ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in COMMANDS:
        r = results[name]
        lines.append(
            f"| `{r['command']}` | {r['runs']} | {r['min_s']:.3f} | {r['median_s']:.3f} | "
            f"{r['median_cpu_s']:.3f} | {r['min_ratio']:.2f} | {r['median_ratio']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command")
    parser.add_argument("--json", action="store_true", help="JSON instead of markdown")
    options = parser.parse_args()
    results = measure(options.runs)
    print(json.dumps(results, indent=2) if options.json else markdown(results))


if __name__ == "__main__":
    main()
