"""The paper table's report writer: collects one row per trained variant from its
run directory and writes report.md, loss_curves.png and pareto.png.

Inputs per run directory (written by mla-train and mla-eval):
  config.json         model.* entries and flag.* entries
  metrics.jsonl       progress / validation records (docs/training.md)
  eval_report.json    `mla-eval --task=report --out=...` (docs/evaluation.md)
  eval_loss.json      optional `mla-eval --task=loss --out=...`; when present its
                      loss is the row's validation loss, else the last validation
                      record of metrics.jsonl

Arithmetic (the tests check it against hand-computed values):
  Δ vs MHA %        = 100 · (val_loss − val_loss[mha]) / val_loss[mha]
  KV reduction %    = 100 · (1 − kv_bytes / kv_bytes of MHA of the same size)
  speed-up vs MLA   = decode tok/s / decode tok/s of full-rank MLA (mla, r = d)

Pure functions apart from the writers; single-threaded; a missing or malformed
input file raises ReportError naming it.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mlatrain import metrics  # noqa: E402

class ReportError(Exception):
    pass


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: {e}") from e


def read_metrics(path):
    """(progress, validation) records of metrics.jsonl, last record per step wins."""
    try:
        rows = metrics.read(path)
    except metrics.MetricsError as e:
        raise ReportError(str(e)) from e
    return metrics.progress(rows), metrics.validation(rows)


def pick_decode_speed(report):
    """Decode tok/s of the report's headline cell: absorbed mode where measured,
    the smallest batch, the longest context (the paper's single-stream decode)."""
    cells = report.get("speed") or []
    if not cells:
        raise ReportError("eval report has no speed cells")
    absorbed = [c for c in cells if c.get("decode") == "absorbed"]
    cells = absorbed or cells
    batch = min(c["batch"] for c in cells)
    cells = [c for c in cells if c["batch"] == batch]
    return max(cells, key=lambda c: c["context"])


def collect_row(variant, run_dir):
    """One table row from a run directory (see the module docstring)."""
    config = _read_json(os.path.join(run_dir, "config.json"))
    report = _read_json(os.path.join(run_dir, "eval_report.json"))
    progress, validation = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    loss_path = os.path.join(run_dir, "eval_loss.json")
    if os.path.isfile(loss_path):
        val_loss, val_source = _read_json(loss_path)["loss"], "mla-eval loss"
    elif validation:
        val_loss, val_source = validation[-1]["val_loss"], "training validation"
    else:
        raise ReportError(f"{run_dir}: no validation loss (metrics.jsonl nor eval_loss.json)")
    cell = pick_decode_speed(report)
    kv = report["kv_cache"]
    return {
        "variant": variant,
        "attention": config["model.attention"],
        "d_model": int(config["model.d_model"]),
        "kv_rank": int(config["model.kv_rank"]),
        "rope_dim": int(config["model.rope_dim"]),
        "parameters": int(report["parameters"]),
        "val_loss": float(val_loss),
        "val_source": val_source,
        "steps": progress[-1]["step"] if progress else 0,
        "tokens_seen": progress[-1].get("tokens_seen", 0) if progress else 0,
        "train_s": progress[-1].get("elapsed_s", 0) if progress else 0,
        "kv_bytes_per_token": int(kv["bytes_per_token_fp32"]),
        "mha_kv_bytes_per_token": int(kv["mha_bytes_per_token_fp32"]),
        "decode_tps": float(cell["decode_tokens_per_s"]),
        "decode_cell": f"{cell['decode']} batch {cell['batch']} ctx {cell['context']}",
        "progress": progress,
        "validation": validation,
    }


def rank_label(row):
    """'r=d/2'-style label for MLA kinds, '' otherwise."""
    if not row["attention"].startswith("mla"):
        return ""
    d, r = row["d_model"], row["kv_rank"]
    if r == d:
        return "r=d"
    if d % r == 0:
        return f"r=d/{d // r}"
    return f"r={r}"


def derive(rows):
    """Adds delta_vs_mha_pct, kv_reduction_pct and speedup_vs_full_mla to each row
    (None where the baseline is absent). Returns the rows in table order."""
    mha = next((r for r in rows if r["attention"] == "mha"), None)
    full = next((r for r in rows if r["attention"] == "mla" and r["kv_rank"] == r["d_model"]), None)
    for r in rows:
        r["delta_vs_mha_pct"] = (100.0 * (r["val_loss"] - mha["val_loss"]) / mha["val_loss"]
                                 if mha else None)
        r["kv_reduction_pct"] = 100.0 * (1.0 - r["kv_bytes_per_token"] / r["mha_kv_bytes_per_token"])
        r["speedup_vs_full_mla"] = r["decode_tps"] / full["decode_tps"] if full else None
    kinds = {"mha": 0, "mha_rope": 1, "mla": 2, "mla_rope": 3}
    return sorted(rows, key=lambda r: (kinds.get(r["attention"], 9), -r["kv_rank"], r["variant"]))


def _fmt(x, spec, none="—"):
    return none if x is None else format(x, spec)


def table_markdown(rows):
    """The report's main table (rows already passed through derive)."""
    head = ("| variant | attention | rank | parameters | val loss | Δ vs MHA | KV bytes/token (fp32) "
            "| KV reduction | decode tok/s | speed-up vs MLA r=d |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['attention']} | {rank_label(r) or '—'} | {r['parameters']:,} "
            f"| {r['val_loss']:.4f} | {_fmt(r['delta_vs_mha_pct'], '+.2f')}% "
            f"| {r['kv_bytes_per_token']:,} | {r['kv_reduction_pct']:.1f}% "
            f"| {r['decode_tps']:.1f} | {_fmt(r['speedup_vs_full_mla'], '.2f')}"
            f"{'×' if r['speedup_vs_full_mla'] is not None else ''} |")
    return head + "\n".join(lines) + "\n"


def plot_loss_curves(rows, path):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for r in rows:
        xs = [p["step"] for p in r["progress"]]
        line, = a1.plot(xs, [p["loss"] for p in r["progress"]], linewidth=1.0, label=r["variant"])
        if r["validation"]:
            a2.plot([v["step"] for v in r["validation"]], [v["val_loss"] for v in r["validation"]],
                    "o-", color=line.get_color(), markersize=4, linewidth=1.0, label=r["variant"])
    a1.set_title("training loss")
    a2.set_title("validation loss")
    for a in (a1, a2):
        a.set_xlabel("step")
        a.set_ylabel("cross-entropy (nats)")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    # The tail is where the variants differ; the warm-up drop would flatten it.
    tail = [p["loss"] for r in rows for p in r["progress"][len(r["progress"]) // 4:]]
    if tail:
        a1.set_ylim(min(tail) - 0.05, max(tail) + 0.05)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def pareto_front(rows):
    """Rows not dominated in (KV bytes, val loss): nobody has both less or equal
    memory and a lower-or-equal loss with one strictly better."""
    front = []
    for r in rows:
        dominated = any(
            o is not r and o["kv_bytes_per_token"] <= r["kv_bytes_per_token"]
            and o["val_loss"] <= r["val_loss"]
            and (o["kv_bytes_per_token"] < r["kv_bytes_per_token"] or o["val_loss"] < r["val_loss"])
            for o in rows)
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r["kv_bytes_per_token"])


def plot_pareto(rows, path):
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    markers = {"mha": "s", "mha_rope": "D", "mla": "o", "mla_rope": "^"}
    labelled = set()
    for r in rows:
        kind = r["attention"]
        ax.scatter(r["kv_bytes_per_token"], r["val_loss"], marker=markers.get(kind, "x"), s=45,
                   color=f"C{list(markers).index(kind) if kind in markers else 4}",
                   label=None if kind in labelled else kind)
        labelled.add(kind)
        ax.annotate(r["variant"], (r["kv_bytes_per_token"], r["val_loss"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    front = pareto_front(rows)
    ax.plot([r["kv_bytes_per_token"] for r in front], [r["val_loss"] for r in front], "k--",
            linewidth=0.8, label="Pareto front")
    ax.set_xscale("log", base=2)
    # Tick at the variants' own sizes: the values the table quotes.
    ticks = sorted({r["kv_bytes_per_token"] for r in rows})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:,}" for t in ticks], rotation=45, fontsize=7)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("KV cache bytes per token (fp32, all layers)")
    ax.set_ylabel("validation loss (nats)")
    ax.set_title("KV memory vs validation loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(out_dir, rows, command="", notes=""):
    """Writes report.md, loss_curves.png and pareto.png into out_dir; returns the
    rows in table order with the derived columns."""
    rows = derive(rows)
    os.makedirs(out_dir, exist_ok=True)
    plot_loss_curves(rows, os.path.join(out_dir, "loss_curves.png"))
    plot_pareto(rows, os.path.join(out_dir, "pareto.png"))
    cells = sorted({r["decode_cell"] for r in rows})
    sources = sorted({r["val_source"] for r in rows})
    md = ["# Paper table: MHA vs MLA vs MLA+RoPE", ""]
    if command:
        md += ["Command:", "", "```sh", command, "```", ""]
    md += [table_markdown(rows),
           f"* val loss: {', '.join(sources)}; the same seed, data order and token budget for "
           "every variant.",
           f"* Δ vs MHA: relative change of the validation loss against `mha` (negative is better).",
           "* KV bytes/token: the decoder's cache for one token over all layers in fp32 "
           "(bf16 is half); reduction against MHA of the same size.",
           f"* decode tok/s: `mla-eval --task=report`, {'; '.join(cells)}; speed-up against "
           "full-rank MLA (`mla`, r = d).",
           "", "![loss curves](loss_curves.png)", "", "![Pareto](pareto.png)", ""]
    if notes:
        md += [notes, ""]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(md))
    table = [{k: v for k, v in r.items() if k not in ("progress", "validation")} for r in rows]
    with open(os.path.join(out_dir, "table.json"), "w") as f:
        json.dump(table, f, indent=1)
    return rows
