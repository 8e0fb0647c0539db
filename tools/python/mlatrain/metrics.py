"""A training run's metrics.jsonl (docs/training.md): one JSON object per line,
of three kinds: progress (step, loss, lr, grad_norm, tokens_per_s, mfu, ...),
validation (step, val_loss, val_ppl) and checkpoint (step, checkpoint, save_s).

read(run_dir) returns every record; progress() and validation() keep one
record per step, the last one, since a resumed run writes the steps after its
checkpoint again. A torn last line (a run killed mid-write) is skipped with a
warning; earlier lines are whole. Pure Python (pandas only for frame()).
"""
import json
import os
import warnings


class MetricsError(Exception):
    """No metrics file, or one without the records asked for."""


def metrics_path(run_dir):
    """RUN_DIR/metrics.jsonl, or the path itself when it names a file."""
    return run_dir if os.path.isfile(run_dir) else os.path.join(run_dir, "metrics.jsonl")


def read(run_dir):
    """Every record of the run's metrics.jsonl, in file order (list of dicts)."""
    path = metrics_path(os.fspath(run_dir))
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise MetricsError(f"{path}: no such file") from None
    except OSError as e:
        raise MetricsError(f"{path}: {e.strerror or e}") from e
    rows = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            warnings.warn(f"{path}:{n}: skipped ({e})")
            continue
        if isinstance(rec, dict) and "step" in rec:
            rows.append(rec)
    return rows


def _last_per_step(rows, key):
    by_step = {}
    for rec in rows:
        if key in rec:
            by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def progress(rows):
    """Progress records (those with "loss"), one per step, sorted by step."""
    return _last_per_step(rows, "loss")


def validation(rows):
    """Validation records (those with "val_loss"), one per step, sorted by step."""
    return _last_per_step(rows, "val_loss")


def frame(run_dir):
    """read(run_dir) as a pandas DataFrame (needs pandas)."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError("mlatrain.metrics.frame needs pandas (Debian: python3-pandas)") from e
    return pandas.DataFrame(read(run_dir))
