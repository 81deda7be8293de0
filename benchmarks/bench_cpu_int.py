"""Latency of lwnn's integer CPU runtimes (s8, q8, q16) against lwnn float, same models, one run.

    .venv/bin/python benchmarks/bench_cpu_int.py            # print the table
    .venv/bin/python benchmarks/bench_cpu_int.py --write    # ... and record it in RESULTS.md

One BLAS thread (set before NumPy is imported). Each model is calibrated once per scheme on a
few inputs (minmax), then every runtime is timed after a warm-up: median of at least --min-runs
calls and --min-time seconds. Target (Step 2): integer latency at most 2x float.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu_float import MODELS, machine_info, make_input, model_path, timed_block, write_results  # noqa: E402

import lwnn  # noqa: E402

SCHEMES = ("s8", "q8", "q16")


def bench(name: str, batch: int, args) -> dict:
    model = lwnn.load(model_path(name))
    (input_name,) = model.inputs
    feeds = {input_name: make_input(name, batch)}
    calib = {input_name: make_input(name, 8)}
    row = {"model": name, "batch": batch}
    model.run(feeds)
    row["float"] = float(np.median(timed_block(lambda: model.run(feeds), args.min_runs, args.min_time, 30)))
    for scheme in SCHEMES:
        q = lwnn.quantize(model, calib, scheme, "minmax", progress=False)
        q.run(feeds)
        times = timed_block(lambda q=q: q.run(feeds), args.min_runs, args.min_time, 30)
        row[scheme] = float(np.median(times))
        row[f"{scheme}_integer"] = sum(p.runtime != "cpu/float" for p in q.plan())
    row["layers"] = len(model.layers)
    print(f"  {name} b{batch}: " + ", ".join(f"{k} {row[k] * 1e3:.2f} ms" for k in ("float", *SCHEMES)),
          flush=True)
    return row


def markdown(machine: dict, rows: list[dict], command: str) -> str:
    lines = [
        f"- CPU: {machine['cpu']}, 1 BLAS thread; NumPy {machine['numpy']}, lwnn {machine['lwnn']}",
        f"- Command: `{command}`",
        "",
        "| model | batch | float ms | s8 ms | q8 ms | q16 ms | s8/float | q8/float | q16/float "
        "| integer layers (s8/q8/q16 of all) |",
        "| - | -: | -: | -: | -: | -: | -: | -: | -: | - |",
    ]
    for r in rows:
        ratios = " | ".join(f"{r[s] / r['float']:.2f}" for s in SCHEMES)
        counts = "/".join(str(r[f"{s}_integer"]) for s in SCHEMES)
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['float'] * 1e3:.2f} | {r['s8'] * 1e3:.2f} | "
            f"{r['q8'] * 1e3:.2f} | {r['q16'] * 1e3:.2f} | {ratios} | {counts} of {r['layers']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fashion", "cls", "det"], choices=list(MODELS))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--min-runs", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    rows = [bench(m, b, args) for m in args.models for b in args.batch]
    command = "python benchmarks/bench_cpu_int.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = markdown(machine_info(1), rows, command.strip())
    print("\n" + body)
    if args.write:
        write_results(f"Integer runtimes against float, {datetime.date.today().isoformat()}", body)
        print("written to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
