"""Do runs made on a GPU count beside runs made on a CPU? The same run, trained again here.

    python benchmarks/device_check.py cardinality-full/2x44d:1 data-size-300/ResNet-18:0
    python benchmarks/device_check.py --summary     # only rewrites results/device_check.md
                                                    # (as `python -m d2l_ext tables` does)

Some rows of ``cardinality-full`` and ``data-size`` were trained on a lent GPU, where the
recipes' ``amp=True`` means bf16 autocast, and the initial weights and the batch order are
drawn by the GPU's own generator; the other rows of those tables ran on a CPU in fp32. Each
argument EXPERIMENT/LABEL:SEED names one GPU record (``results/EXPERIMENT/<label>__seed<SEED>.json``); its configuration,
recipe and seed are trained again on the CPU (fp32, the same training images, initial weights
and batch order drawn by the CPU's generator) into ``results/device_check/EXPERIMENT/``, and
``results/device_check.md`` sets each pair side by side. A run whose file exists is not
redone, an interrupted one resumes from its checkpoint (``experiments.run_one``).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from d2l_ext import experiments as E  # noqa: E402
from d2l_ext import results as R  # noqa: E402

FOLDER = R.DEVICE_CHECK


def parse_run(text):
    """'EXPERIMENT/LABEL:SEED' -> (experiment, label, seed); a ValueError naming the text."""
    try:
        where, seed = text.rsplit(":", 1)
        experiment, label = where.split("/", 1)
        return experiment, label, int(seed)
    except ValueError:
        raise ValueError(f"{text!r} is not EXPERIMENT/LABEL:SEED "
                         f"(say, cardinality-full/2x44d:1)") from None


def gpu_record(out, experiment, label, seed):
    """The GPU run's record, or a ValueError naming the file and what it holds instead."""
    path = E._result_path(out, experiment, label, seed)
    if not path.exists():
        raise ValueError(f"{path} does not exist: no run {experiment}/{label}:{seed}")
    record = json.loads(path.read_text())
    if R._device_type(record) != "cuda":
        raise ValueError(f"{path} ran on {record.get('device')!r}, not on a GPU: nothing to check")
    return record


def _label(twin, experiment, label, seed):
    """The twin's own command, and the GPU record it is the twin of (a path under --out)."""
    twin["command"] = f"python benchmarks/device_check.py {experiment}/{label}:{seed}"
    twin["gpu_record"] = str(E._result_path("", experiment, label, seed))


def check(out, root, experiment, label, seed):
    """Train the GPU run's twin on the CPU (once) and return its record."""
    record = gpu_record(out, experiment, label, seed)
    path = E._result_path(Path(out) / FOLDER, experiment, label, seed)
    if path.exists():
        twin = json.loads(path.read_text())
        if "gpu_record" not in twin:     # killed between run_one's write and the one below
            _label(twin, experiment, label, seed)
            E._write_json(path, twin)
        return twin
    lock = E._claim(path)       # two processes never train one twin
    if lock is None:
        print(f"[device-check] {experiment}/{label} seed {seed}: being trained by another "
              f"process", flush=True)
        return None
    try:
        print(f"[device-check] {experiment}/{label} seed {seed}: training on the CPU", flush=True)
        twin = E.run_one(experiment, label, record["config"], seed, path, record["recipe"],
                         device="cpu", root=root, progress="none")
        _label(twin, experiment, label, seed)
        E._write_json(path, twin)
    finally:
        E.release_lock(lock)
    print(f"[device-check] {experiment}/{label} seed {seed}: test acc "
          f"{twin['test_acc']:.4f} on the CPU -> {path}", flush=True)
    return twin


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", help="EXPERIMENT/LABEL:SEED of a GPU record")
    p.add_argument("--summary", action="store_true", help="only rewrite results/device_check.md")
    p.add_argument("--out", default="results")
    p.add_argument("--root", default="data")
    args = p.parse_args(argv)
    try:
        runs = [parse_run(r) for r in args.runs]
        for run in runs:                            # every argument checked before any work
            gpu_record(args.out, *run)
    except ValueError as e:
        p.exit(2, f"error: {e}\n")
    if not runs and not args.summary:
        p.exit(2, "error: name at least one EXPERIMENT/LABEL:SEED, or --summary\n")
    for run in runs:
        check(args.out, args.root, *run)
    path = Path(args.out) / f"{FOLDER}.md"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"## {FOLDER}\n\n{R.render_table(FOLDER, args.out)}\n")   # as `tables` does
    tmp.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
