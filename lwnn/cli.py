"""The ``lwnn`` command line.

    lwnn                      run the bundled default model on its bundled samples
    lwnn info MODEL           inputs, outputs and layers of a model
    lwnn run MODEL --data F   run on arrays from an .npz file (keys = input names)
    lwnn coverage [--ops]     the layer x runtime coverage table
    lwnn report [MODEL --data F] [--out report.html]
                              per-layer float vs s8/q8/q16 report (HTML, plots embedded);
                              without MODEL: the bundled model and samples
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import lwnn
from lwnn import coverage
from lwnn.errors import FeedError, LwnnError


def _layer_table(model: lwnn.Model, rec: lwnn.Recording | None = None) -> str:
    rows = [("#", "layer", "op", "output shape", "runtime", "ms")]
    for i, layer in enumerate(model.layers):
        out = layer.outputs[0]
        shape = str(tuple(rec[out].shape)) if rec is not None and out in rec else "-"
        runtime = rec.executed_by.get(layer.name, "-") if rec is not None else "-"
        ms = f"{rec.seconds[layer.name] * 1e3:.2f}" if rec is not None and layer.name in rec.seconds else "-"
        rows.append((str(i), layer.name, layer.op_type, shape, runtime, ms))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def _describe(model: lwnn.Model) -> str:
    lines = [f"model {model.name!r}: {len(model.layers)} layers"]
    lines += [f"  input  {n}: {s.describe()}" for n, s in model.graph.inputs.items()]
    lines += [f"  output {n}: {s}" for n, s in model.outputs.items()]
    return "\n".join(lines)


def cmd_default(args) -> int:
    from lwnn import data

    model = lwnn.load(data.default_model_path())
    images, labels = data.default_samples()
    print(_describe(model))
    rec = model.run({"image": images[:1]}, backend=args.backend, record=True)
    print(_layer_table(model, rec))
    probs = model.run({"image": images}, backend=args.backend)["probs"]
    accuracy = float((probs.argmax(axis=1) == labels).mean())
    print(f"top-1 on the {len(labels)} bundled Fashion-MNIST test images ({args.backend}): {accuracy:.2%}")
    return 0


def cmd_info(args) -> int:
    model = lwnn.load(args.model)
    print(_describe(model))
    print(_layer_table(model))
    return 0


def cmd_run(args) -> int:
    model = lwnn.load(args.model)
    feeds = _load_npz(args.data)
    rec = model.run(feeds, backend=args.backend, record=True)
    if args.layers:
        print(_layer_table(model, rec))
    for name, value in rec.outputs.items():
        stats = f"min {value.min():.6g}, max {value.max():.6g}"
        print(f"{name}: shape {value.shape}, dtype {value.dtype}, {stats}")
    if args.out:
        np.savez(args.out, **rec.outputs)
        print(f"wrote {args.out}")
    return 0


def _load_npz(path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file by key; FeedError for anything else (FileNotFoundError if absent)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise FeedError(f"--data {str(path)!r} is not a NumPy .npz file: {err}") from None
    if isinstance(loaded, np.ndarray):
        raise FeedError(f"--data {str(path)!r} holds one array (.npy); expected an .npz whose keys are the "
                        "model's input names.")
    with loaded:
        return {name: loaded[name] for name in loaded.files}


def cmd_coverage(args) -> int:
    rows = coverage.op_table() if args.ops else coverage.seed_table()
    print(coverage.to_markdown(rows, "Op" if args.ops else "Layer"))
    return 0


def cmd_report(args) -> int:
    import time
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")  # files only: no window, whatever backend the environment prefers
    from lwnn import report

    start = time.perf_counter()
    if args.model is None:
        from lwnn import data

        if args.data:
            raise LwnnError("lwnn report: --data needs a MODEL (without one, the bundled model and samples "
                            "run).")
        model = lwnn.load(data.default_model_path())
        images, labels = data.default_samples()
        feeds, source = {"image": images}, "bundled Fashion-MNIST CNN and 256 test images"
    else:
        if not args.data:
            raise LwnnError("lwnn report MODEL needs --data: a .npz of input arrays keyed by input name "
                            "(first axis = samples; optional 'labels'), or a .npy for a one-input model.")
        model = lwnn.load(args.model)
        feeds, labels = report.load_data(args.data, model)
        source = f"{args.model}, data {args.data}"
    out = report.build_report(model, feeds, labels, out=args.out, schemes=args.schemes, method=args.method,
                              calib=args.calib, max_eval=args.max_eval, threshold_db=args.threshold,
                              source=source, progress=not args.quiet)
    print(f"wrote {Path(out).resolve()} ({time.perf_counter() - start:.1f} s)")
    return 0


def _checked(parse, check, expected: str):
    """An argparse ``type``: ``parse`` the text, then ``check`` the value by the rule the Python API
    uses (``lwnn.quant.options``). A bad value is argparse's error: a message and exit code 2."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}. Received {text!r}.") from None
        try:
            return check(value)
        except LwnnError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = expected  # argparse names the type in some messages
    return convert


def _arg_types() -> dict:
    from lwnn.backends import available
    from lwnn.numerics.params import SCHEMES
    from lwnn.quant import options

    def count(name):
        return _checked(int, lambda v: options.check_int(name, v, lo=1), "an integer >= 1")

    def schemes(text):
        return options.check_choices("schemes", [s.strip() for s in text.split(",") if s.strip()], SCHEMES,
                                     what="scheme")

    return dict(
        backend=_checked(str, lambda v: options.check_choice("backend", v, available(), error=LwnnError),
                         "a backend"),
        schemes=_checked(str, schemes, "comma-separated schemes"),
        method=_checked(str, options.check_method, "a calibration method"),
        calib=count("calib"), max_eval=count("max_eval"),
        threshold=_checked(float, options.check_threshold_db, "a number (dB)"),
    )


def build_parser() -> argparse.ArgumentParser:
    types = _arg_types()
    parser = argparse.ArgumentParser(prog="lwnn", description="lwnn quantization workbench")
    parser.add_argument("--backend", default="cpu", type=types["backend"],
                        help="runtime for the default run (default: cpu)")
    parser.set_defaults(func=cmd_default)
    sub = parser.add_subparsers(title="commands")

    info = sub.add_parser("info", help="inputs, outputs and layers of a model")
    info.add_argument("model")
    info.set_defaults(func=cmd_info)

    run = sub.add_parser("run", help="run a model on arrays from an .npz file")
    run.add_argument("model")
    run.add_argument("--data", required=True, help=".npz file whose keys are the model's input names")
    run.add_argument("--backend", default="cpu", type=types["backend"])
    run.add_argument("--layers", action="store_true", help="print every layer's shape, runtime and time")
    run.add_argument("--out", help="write the outputs to this .npz file")
    run.set_defaults(func=cmd_run)

    cov = sub.add_parser("coverage", help="layer x runtime coverage table (markdown)")
    cov.add_argument("--ops", action="store_true", help="every lwnn op instead of the seed's layers")
    cov.set_defaults(func=cmd_coverage)

    rep = sub.add_parser("report", help="HTML report of per-layer float vs s8/q8/q16 behaviour")
    rep.add_argument("model", nargs="?", help="model file (default: the bundled Fashion-MNIST CNN)")
    rep.add_argument("--data", help=".npz keyed by input name (optional 'labels'), or .npy for one input")
    rep.add_argument("--out", default="report.html", help="HTML file to write (default: ./report.html)")
    rep.add_argument("--schemes", default=("s8", "q8", "q16"), type=types["schemes"],
                     help="comma-separated schemes (default: s8,q8,q16)")
    rep.add_argument("--method", default="minmax", type=types["method"],
                     help="calibration: minmax, percentile, kl or mse")
    rep.add_argument("--calib", type=types["calib"],
                     help="samples used to calibrate (default: half); the rest evaluate")
    rep.add_argument("--max-eval", type=types["max_eval"], default=256,
                     help="at most this many samples evaluated")
    rep.add_argument("--threshold", type=types["threshold"], default=20.0,
                     help="SQNR (dB) below which a layer is flagged")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (LwnnError, FileNotFoundError) as err:
        print(f"lwnn: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
