"""Fuzz lwnn's inputs (issue 13): seeded mutations of real models, feeds and calibration sets, each
case in its own process with a time and memory limit (tests/fuzzing.py has the mutator, the runner
and the oracle; tests/test_fuzz.py runs a fixed sample in CI).

    .venv/bin/python scripts/fuzz.py --cases 2000 --seed 0 --jobs 2 --out fuzz.json
    .venv/bin/python scripts/fuzz.py --cases 300 --families attributes,structure
    .venv/bin/python scripts/fuzz.py --repro structure:17            # one case here, with its traceback
    .venv/bin/python scripts/fuzz.py --repro structure:17 --save x.onnx   # ... and its model file

Prints a per-family table (cases, ok, lwnn_error, bare, memory, crash, hang, silently_wrong,
disagree, and for information lax / strict: lwnn runs what onnxruntime rejects / rejects what it
runs) and the failures grouped by place. Exits 1 if the oracle found anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzzing  # noqa: E402


def _parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", type=int, default=600, help="number of cases (default 600)")
    p.add_argument("--seed", type=int, default=0, help="run seed: case seeds are seed*1e6 + k (default 0)")
    p.add_argument(
        "--families",
        default=",".join(fuzzing.FAMILIES),
        help=f"comma-separated subset of {','.join(fuzzing.FAMILIES)}",
    )
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="cases at a time (default: all cores)"
    )
    p.add_argument("--timeout", type=float, default=fuzzing.DEFAULT_TIMEOUT_S, help="seconds per case")
    p.add_argument(
        "--memory-mb",
        type=int,
        default=fuzzing.DEFAULT_MEMORY_MB,
        help="address space per case beyond what it starts with (MiB)",
    )
    p.add_argument("--out", help="write every case's record and the summary as JSON")
    p.add_argument("--repro", metavar="FAMILY:SEED", help="run one case in this process and show it")
    p.add_argument("--save", help="with --repro: write the case's model file here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in args.families if f not in fuzzing.FAMILIES]
    if unknown:
        p.error(f"unknown families {unknown}; expected some of {list(fuzzing.FAMILIES)}")
    if args.cases < 1 or args.jobs < 1 or args.timeout <= 0 or args.memory_mb < 64:
        p.error("--cases and --jobs must be >= 1, --timeout > 0, --memory-mb >= 64")
    return args


def _repro(args) -> int:
    """Build one case, run lwnn on it here (with the case's memory limit) to show a traceback, then
    run it as the fuzzer does (lwnn, onnxruntime, the oracle) and print the record."""
    import tempfile

    import lwnn

    family, _, seed = args.repro.partition(":")
    if family not in (*fuzzing.FAMILIES, "selftest") or not seed.lstrip("-").isdigit():
        print(f"--repro wants FAMILY:SEED with FAMILY one of {list(fuzzing.FAMILIES)}", file=sys.stderr)
        return 2
    fuzzing._limit_memory(args.memory_mb)
    case = fuzzing.make_case(family, int(seed))
    model_bytes = case.model if case.model is not None else fuzzing.base_bytes(case.base)
    print(f"case {case.key}: base model {case.base}, {case.mutation}\n  {case.detail}")
    if args.save:
        Path(args.save).write_bytes(model_bytes)
        print(f"  model written to {args.save}")
    if isinstance(case.feeds, dict):
        shapes = (
            f"{k}: {getattr(v, 'shape', type(v).__name__)} {getattr(v, 'dtype', '')}"
            for k, v in case.feeds.items()
        )
        print("  feeds: " + ", ".join(shapes))
    else:
        print(f"  feeds: a {type(case.feeds).__name__}")
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="lwnn-fuzz-repro-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model_bytes)
        try:
            model = lwnn.load(path)
            if case.family == "calibration":
                opts = dict(case.options)
                scheme, method = opts.pop("scheme"), opts.pop("method")
                lwnn.quantize(model, case.calib, scheme, method, **{"progress": False, **opts}).run(
                    case.feeds
                )
            else:
                model.run(case.feeds)
            print("lwnn: ok")
        except lwnn.LwnnError as err:
            print(f"lwnn: {type(err).__name__}: {err}")
        except BaseException:  # noqa: B036 - show whatever escaped
            traceback.print_exc()
    sys.stderr.flush()
    _, record = fuzzing.run_inline(family, int(seed))
    print("record:")
    for key, value in record.items():
        print(f"  {key}: {value}")
    print(
        "oracle: "
        + (", ".join(fuzzing.failures_of({"outcome": record.get("outcome"), **record})) or "passed")
    )
    return 0


def main(argv=None) -> int:
    args = _parse(argv)
    if args.repro:
        return _repro(args)
    specs = fuzzing.plan(args.cases, args.seed, args.families)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread in a process that forks
        bar = tqdm(total=len(specs), unit="case", dynamic_ncols=True, mininterval=1.0)
    tally = {"bad": 0}

    def on_result(record):
        tally["bad"] += bool(fuzzing.failures_of(record))
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"failures {tally['bad']}")

    start = time.perf_counter()
    records = fuzzing.run_cases(
        specs, jobs=args.jobs, timeout_s=args.timeout, memory_mb=args.memory_mb, on_result=on_result
    )
    wall = time.perf_counter() - start
    if bar is not None:
        bar.close()
    print()
    print(fuzzing.format_table(records))
    per_case = sum(r["seconds"] for r in records) / max(1, len(records))
    print(
        f"\n{len(records)} cases in {wall:.1f} s with {args.jobs} jobs "
        f"({wall / len(records) * 1000:.0f} ms per case wall, {per_case * 1000:.0f} ms per case in-process)"
    )
    text = fuzzing.format_failures(records, limit=200)
    print("\nfailures by place:\n" + (text or "  none"))
    if args.out:
        summary = {k: dict(v) for k, v in fuzzing.table(records).items()}
        Path(args.out).write_text(
            json.dumps(
                {
                    "args": {k: v for k, v in vars(args).items()},
                    "seconds": wall,
                    "table": summary,
                    "groups": fuzzing.group_failures(records),
                    "records": records,
                },
                indent=1,
                default=str,
            )
        )
        print(f"\nrecords written to {args.out}")
    return 1 if any(fuzzing.failures_of(r) for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
