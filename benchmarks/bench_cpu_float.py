"""CPU float latency of lwnn against onnxruntime, same machine, same number of threads.

    .venv/bin/python benchmarks/bench_cpu_float.py                 # table for 1 and 2 threads
    .venv/bin/python benchmarks/bench_cpu_float.py --write         # ... and record it in RESULTS.md
    .venv/bin/python benchmarks/bench_cpu_float.py --profile det   # where lwnn spends its time

Each thread count runs in its own process, because BLAS reads OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS / MKL_NUM_THREADS once, when NumPy is imported; onnxruntime gets
intra_op_num_threads=N, inter_op_num_threads=1 and sequential execution (its defaults otherwise,
thread spinning included). After a warm-up, each runtime is timed in two blocks, ordered
lwnn-ORT-ORT-lwnn with a short pause between blocks; together a runtime's blocks make at least
--min-runs runs over at least --min-time seconds, or stop after --max-time seconds (with at least
5 runs). Latency is the wall time of one ``Model.run`` / ``InferenceSession.run`` call.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DET_SIZE = 320  # rapidocr resizes images to multiples of 32; 320x320 is a small real page crop
FLOOR_RUNS = 5
PAUSE_S = 0.5  # between timed blocks, so that the other runtime's worker threads stop spinning

# name -> (description, per-item input shape)
MODELS = {
    "det": ("rapidocr PP-OCRv4 text detector (DBNet)", (3, DET_SIZE, DET_SIZE)),
    "cls": ("rapidocr mobile v2 direction classifier", (3, 48, 192)),
    "fashion": ("bundled Fashion-MNIST CNN", (1, 28, 28)),
    "mnv2": ("MobileNetV2-224, the published architecture with seeded random weights "
             "(benchmarks/mobilenet_v2.py)", (3, 224, 224)),
}


def model_path(name: str) -> Path:
    if name == "fashion":
        from lwnn.data import default_model_path

        return default_model_path()
    if name == "mnv2":  # written once per machine: it is built, not shipped
        sys.path.insert(0, str(REPO / "benchmarks"))
        from mobilenet_v2 import write

        return write(Path(tempfile.gettempdir()) / "lwnn-bench" / "mobilenet_v2_224.onnx")
    from lwnn.zoo import rapidocr_model  # finds the wheel with importlib, without importing it

    return rapidocr_model(name)


def make_input(name: str, batch: int):
    import numpy as np

    if name == "fashion":
        from lwnn.data import default_samples

        images, _ = default_samples()
        return np.ascontiguousarray(images[:batch])
    rng = np.random.default_rng(0)  # latency does not depend on the pixel values
    return rng.standard_normal((batch, *MODELS[name][1])).astype(np.float32)


def ort_session(path: Path, threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def percentile_ms(times: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(times), q) * 1e3)


# ---------------------------------------------------------------------------------------------
# Worker: runs in a child process whose thread variables were set before NumPy was imported.


def machine_info(threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    import lwnn

    cpu = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    blas_text = f"{blas.get('name')} {blas.get('version')}"
    if "openblas configuration" in blas:
        blas_text = blas["openblas configuration"].strip()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "blas": blas_text,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "lwnn": lwnn.__version__,
        "thread_vars": {v: os.environ.get(v) for v in THREAD_VARS},
    }


def timed_block(fn, min_runs: float, min_time: float, max_time: float) -> list[float]:
    """Seconds per call of ``fn``: at least ``min_runs`` calls and ``min_time`` seconds, unless
    ``max_time`` seconds pass first (and at least half of FLOOR_RUNS calls were made)."""
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if (len(times) >= min_runs and elapsed >= min_time) or (
            elapsed >= max_time and 2 * len(times) >= FLOOR_RUNS
        ):
            return times


def bench_one(name: str, batch: int, threads: int, args) -> dict:
    import numpy as np

    import lwnn

    path = model_path(name)
    x = make_input(name, batch)
    m = lwnn.load(path)
    sess = ort_session(path, threads)
    in_name = sess.get_inputs()[0].name
    out_name = sess.get_outputs()[0].name
    feeds = {in_name: x}

    def run_lwnn():
        return m.run(feeds)[out_name]

    def run_ort():
        return sess.run([out_name], feeds)[0]

    y_lwnn, y_ort = run_lwnn(), run_ort()  # warm-up (lwnn plans the graph here)
    max_diff = float(np.abs(y_lwnn - y_ort).max())
    for _ in range(args.warmup - 1):
        run_lwnn()
        run_ort()
    # A-B-B-A blocks: both runtimes see the machine in the same phases on average, and neither
    # runs while the other's idle worker threads still spin (ORT's pool and OpenBLAS busy-wait
    # after each call, which starves the other's threads on a small machine).
    times: dict[str, list[float]] = {"lwnn": [], "ort": []}
    for key, fn in (("lwnn", run_lwnn), ("ort", run_ort), ("ort", run_ort), ("lwnn", run_lwnn)):
        time.sleep(PAUSE_S)
        times[key] += timed_block(fn, args.min_runs / 2, args.min_time / 2, args.max_time / 2)
    runs = len(times["lwnn"])
    row = {"model": name, "batch": batch, "threads": threads, "runs": runs, "ort_runs": len(times["ort"]),
           "max_abs_diff": max_diff}
    for key, ts in times.items():
        row[f"{key}_ms"] = percentile_ms(ts, 50)
        row[f"{key}_p90_ms"] = percentile_ms(ts, 90)
    row["ratio"] = row["lwnn_ms"] / row["ort_ms"]
    return row


def conv_kind(layer, plan) -> str:
    """Conv split by the kind of kernel it runs: depthwise, 1x1 (a GEMM) or kxk (im2col)."""
    if layer.op_type != "Conv":
        return layer.op_type
    w = plan.shapes[layer.inputs[1]]
    if layer.op.group > 1 and w[1] == 1:
        return "Conv depthwise"
    if layer.op.group > 1:
        return "Conv grouped"
    return "Conv 1x1" if all(k == 1 for k in w[2:]) else "Conv kxk"


def profile(name: str, batch: int, threads: int, repeats: int) -> None:
    """Per-op-type time of lwnn's CPU float runtime: the executor's per-layer clock
    (``Recording.seconds``) over recorded runs, which execute every layer as imported."""
    import numpy as np

    import lwnn

    path = model_path(name)
    m = lwnn.load(path)
    in_name = next(iter(m.inputs))
    feeds = m.check_feeds({in_name: make_input(name, batch)})
    plan = m.plan({n: a.shape for n, a in feeds.items()})
    per_layer = np.zeros((repeats, len(plan.steps)))
    whole = []
    for r in range(repeats + 1):  # the first pass is a warm-up
        t_all = time.perf_counter()
        seconds = m.run(feeds, record=True).seconds
        if r:
            whole.append(time.perf_counter() - t_all)
            per_layer[r - 1] = [seconds[layer.name] for layer in plan.steps]
    layer_ms = np.median(per_layer, axis=0) * 1e3
    kinds: dict[str, list[float]] = {}
    for layer, ms in zip(plan.steps, layer_ms):
        kinds.setdefault(conv_kind(layer, plan), []).append(float(ms))
    total = float(layer_ms.sum())
    print(f"\nlwnn CPU float profile: {name} ({MODELS[name][0]}), batch {batch}, {threads} thread(s), "
          f"median of {repeats} runs per layer")
    print(f"sum of layer medians {_ms(total)} ms; median whole pass {_ms(np.median(whole) * 1e3)} ms; "
          f"{len(plan.steps)} layers run, {len(plan.folded)} folded at planning\n")
    print("| op type | layers | total ms | share | ms per layer |")
    print("| - | -: | -: | -: | -: |")
    for kind, ms in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {kind} | {len(ms)} | {_ms(sum(ms))} | {sum(ms) / total:.1%} | {_ms(sum(ms) / len(ms))} |")
    print("\nSlowest layers:\n")
    print("| layer | op type | output shape | ms |")
    print("| - | - | - | -: |")
    for i in np.argsort(-layer_ms)[:12]:
        layer = plan.steps[i]
        shape = "x".join(str(d) for d in plan.shapes[layer.outputs[0]])
        print(f"| {layer.name} | {conv_kind(layer, plan)} | {shape} | {_ms(layer_ms[i])} |")
    ort_profile(path, feeds, threads, repeats)


def ort_profile(path: Path, feeds: dict, threads: int, repeats: int) -> None:
    """onnxruntime's own per-op-type kernel times, for comparison (after its graph fusions)."""
    with tempfile.TemporaryDirectory() as tmp:
        sess = ort_session(path, threads, profile_prefix=str(Path(tmp) / "ort"))
        sess.run(None, feeds)
        for _ in range(repeats):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    totals: dict[str, list[float]] = {}
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            totals.setdefault(ev["args"].get("op_name", "?"), []).append(ev["dur"] / 1e3)
    runs = repeats + 1
    total = sum(sum(v) for v in totals.values()) / runs
    print(f"\nonnxruntime per-op-type kernel time (after its fusions, with profiling on), "
          f"mean of {runs} runs: {_ms(total)} ms\n")
    print("| op type | nodes | total ms | share |")
    print("| - | -: | -: | -: |")
    for op, durs in sorted(totals.items(), key=lambda kv: -sum(kv[1])):
        ms = sum(durs) / runs
        print(f"| {op} | {len(durs) // runs} | {_ms(ms)} | {ms / total:.1%} |")


def worker(args) -> None:
    threads = args.threads[0]
    wrong = {v: os.environ.get(v) for v in THREAD_VARS if os.environ.get(v) != str(threads)}
    if wrong or "numpy" in sys.modules:
        sys.exit(f"worker for {threads} thread(s) started with {wrong} / numpy already imported")
    sys.path.insert(0, str(REPO))
    if args.profile:
        profile(args.profile, args.batch[0], threads, args.repeats)
        return
    print(json.dumps({"machine": machine_info(threads)}), flush=True)
    for name in args.models:
        for batch in args.batch:
            row = bench_one(name, batch, threads, args)
            print(json.dumps({"row": row}), flush=True)
            print(f"  {name} b{batch} t{threads}: lwnn {row['lwnn_ms']:.2f} ms, ort {row['ort_ms']:.2f} ms "
                  f"({row['runs']} runs)", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Parent: one worker process per thread count, then the table.


def spawn(args, threads: int, capture: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    cmd = [sys.executable, __file__, "--_worker", "--threads", str(threads),
           "--models", *args.models, "--batch", *map(str, args.batch),
           "--min-runs", str(args.min_runs), "--min-time", str(args.min_time),
           "--max-time", str(args.max_time), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    if args.profile:
        cmd += ["--profile", args.profile]
    return subprocess.run(cmd, env=env, check=True, text=True, stdout=subprocess.PIPE if capture else None)


def _ms(v: float) -> str:
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def markdown(machine: dict, rows: list[dict], command: str) -> str:
    lines = [
        f"- CPU: {machine['cpu']}, {machine['logical_cpus']} logical CPUs "
        f"({machine['usable_cpus']} usable); load average at start {machine['load_avg']}",
        f"- BLAS: {machine['blas']}",
        f"- Python {machine['python']}, NumPy {machine['numpy']}, onnxruntime {machine['onnxruntime']}, "
        f"lwnn {machine['lwnn']}",
        f"- Command: `{command}`",
        "",
        "| model | batch | threads | lwnn ms | lwnn p90 | onnxruntime ms | ORT p90 "
        "| ratio (lwnn/ORT) | runs (lwnn / ORT) |",
        "| - | -: | -: | -: | -: | -: | -: | -: | -: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {_ms(r['lwnn_ms'])} | {_ms(r['lwnn_p90_ms'])} "
            f"| {_ms(r['ort_ms'])} | {_ms(r['ort_p90_ms'])} | {r['ratio']:.2f} "
            f"| {r['runs']} / {r['ort_runs']} |"
        )
    lines += ["", "Models: " + "; ".join(f"{n} = {MODELS[n][0]}, input [batch, "
                                        f"{', '.join(map(str, MODELS[n][1]))}]" for n in MODELS), ""]
    return "\n".join(lines)


RESULTS_HEADER = """# CPU float benchmarks: lwnn against onnxruntime

Generated by `benchmarks/bench_cpu_float.py --write` (one dated section per day, replaced when
rerun). Latencies are medians (and 90th percentiles) of one inference call; both runtimes use
the same number of threads (BLAS thread variables for lwnn; intra-op threads, one inter-op thread,
sequential execution for onnxruntime). Target: lwnn within 1.5x of onnxruntime.
"""


def write_results(section_title: str, body: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else RESULTS_HEADER
    section = f"## {section_title}\n\n{body}"
    # Sections start with "## "; replace the one with the same title, else append.
    parts = re.split(r"(?m)^(?=## )", text)
    kept = [p for p in parts if not p.startswith(f"## {section_title}\n")]
    head, rest = kept[0], kept[1:]
    new = head.rstrip("\n") + "\n\n" + "".join(p.rstrip("\n") + "\n\n" for p in rest) + section
    RESULTS.write_text(new.rstrip("\n") + "\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    p.add_argument("--min-runs", type=int, default=20)
    p.add_argument("--min-time", type=float, default=3.0, help="seconds of timed runs at least")
    p.add_argument("--max-time", type=float, default=20.0, help="stop after this many seconds "
                   f"(with at least {FLOOR_RUNS} runs) even before --min-runs")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs of each runtime first")
    p.add_argument("--write", action="store_true", help=f"record the table in {RESULTS.relative_to(REPO)}")
    p.add_argument("--profile", choices=sorted(MODELS), help="per-op-type lwnn time of one model "
                   "(first --batch and --threads values) instead of the table")
    p.add_argument("--repeats", type=int, default=5, help="passes timed by --profile")
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args._worker:
        worker(args)
        return
    if args.profile:
        spawn(args, args.threads[0], capture=False)
        return
    machine, rows = None, []
    for threads in args.threads:
        print(f"{threads} thread(s):", file=sys.stderr, flush=True)
        out = spawn(args, threads, capture=True).stdout
        for line in out.splitlines():
            record = json.loads(line)
            machine = machine or record.get("machine")
            if "row" in record:
                rows.append(record["row"])
    rows.sort(key=lambda r: (list(MODELS).index(r["model"]), r["batch"], r["threads"]))
    command = "python benchmarks/bench_cpu_float.py " + " ".join(sys.argv[1:] if argv is None else argv)
    body = markdown(machine, rows, command.strip())
    print(body)
    if args.write:
        write_results(f"{datetime.date.today().isoformat()} — {machine['cpu']}", body)
        print(f"written to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
