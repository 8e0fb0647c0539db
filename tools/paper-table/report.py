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
  plateau change %  = 100 · (val_loss at the first validation in the last
                      PLATEAU_WINDOW of the steps − final val_loss) / final val_loss;
                      plateaued when < PLATEAU_TOLERANCE_PCT; the same over the
                      last WIDE_WINDOW is reported beside it
A variant trained with several seeds is one row: its val_loss is the mean over
the seeds, val_loss_min/max their range, decode tok/s the median of the seeds'
measurements. A difference between two variants is "resolved" when it exceeds
half the sum of their seed ranges (the verdicts say when it is not).

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

PLATEAU_WINDOW = 0.1          # the last 10 % of the steps
PLATEAU_TOLERANCE_PCT = 1.0   # less than 1 % change of the validation loss there
WIDE_WINDOW = 0.2             # also reported: the change over the last 20 %


class ReportError(Exception):
    pass


def plateau(validation, steps, window=PLATEAU_WINDOW, tolerance_pct=PLATEAU_TOLERANCE_PCT):
    """The plateau test of one run: {start_step, start_loss, end_loss, change_pct,
    plateaued}, or None with fewer than two validations in the window's reach."""
    if len(validation) < 2 or steps <= 0:
        return None
    start_step = steps * (1.0 - window)
    start = next((v for v in validation if v["step"] >= start_step), None)
    end = validation[-1]
    if start is None or start is end:
        # No validation inside the window: use the last one before it.
        before = [v for v in validation if v["step"] < end["step"]]
        if not before:
            return None
        start = before[-1]
    change = 100.0 * (start["val_loss"] - end["val_loss"]) / end["val_loss"]
    return {"start_step": start["step"], "start_loss": start["val_loss"],
            "end_loss": end["val_loss"], "change_pct": change,
            "plateaued": change < tolerance_pct}


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
        "seed": int(config.get("flag.seed", 0) or 0),
        "plateau": plateau(validation, progress[-1]["step"] if progress else 0),
        "plateau_wide": plateau(validation, progress[-1]["step"] if progress else 0, window=WIDE_WINDOW),
        "kv_bytes_per_token": int(kv["bytes_per_token_fp32"]),
        "mha_kv_bytes_per_token": int(kv["mha_bytes_per_token_fp32"]),
        "decode_tps": float(cell["decode_tokens_per_s"]),
        "decode_cell": f"{cell['decode']} batch {cell['batch']} ctx {cell['context']}",
        "progress": progress,
        "validation": validation,
    }


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def combine_seeds(rows):
    """One row per variant from rows of one or more seeds each (module docstring).
    Each combined row keeps its seeds' rows under "runs" (curves, per-seed loss)."""
    by_variant = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r)
    out = []
    for variant, runs in by_variant.items():
        runs = sorted(runs, key=lambda r: r.get("seed", 0))
        losses = [r["val_loss"] for r in runs]
        row = dict(runs[0])
        row.update({
            "seeds": [r.get("seed", 0) for r in runs],
            "val_loss": sum(losses) / len(losses),
            "val_loss_seeds": losses,
            "val_loss_min": min(losses),
            "val_loss_max": max(losses),
            "decode_tps": _median([r["decode_tps"] for r in runs]),
            "train_s": sum(r["train_s"] for r in runs),
            "plateaued": all(r.get("plateau") and r["plateau"]["plateaued"] for r in runs),
            "plateau_change_pct": max((r["plateau"]["change_pct"] for r in runs if r.get("plateau")),
                                      default=None),
            "plateau_wide_change_pct": max((r["plateau_wide"]["change_pct"] for r in runs
                                            if r.get("plateau_wide")), default=None),
            "runs": runs,
        })
        out.append(row)
    return out


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


TABLE_COLUMNS = ["variant", "attention", "rank", "parameters", "seeds", "val loss", "seed range",
                 "Δ vs MHA", "plateau", "KV bytes/token (fp32)", "KV reduction", "decode tok/s",
                 "speed-up vs MLA r=d"]


def table_markdown(rows):
    """The report's main table (rows already passed through derive)."""
    head = ("| " + " | ".join(TABLE_COLUMNS) + " |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        seeds = r.get("seeds") or [r.get("seed", 0)]
        spread = (f"{r['val_loss_min']:.4f}–{r['val_loss_max']:.4f}" if len(seeds) > 1 else "—")
        change, wide = r.get("plateau_change_pct"), r.get("plateau_wide_change_pct")
        plat = "—" if change is None else f"{'yes' if r['plateaued'] else 'no'} ({change:+.2f}%"
        if change is not None:
            plat += f"; {wide:+.2f}% over {100 * WIDE_WINDOW:g}%)" if wide is not None else ")"
        lines.append(
            f"| {r['variant']} | {r['attention']} | {rank_label(r) or '—'} | {r['parameters']:,} "
            f"| {','.join(str(s) for s in seeds)} "
            f"| {r['val_loss']:.4f} | {spread} | {_fmt(r['delta_vs_mha_pct'], '+.2f')}% | {plat} "
            f"| {r['kv_bytes_per_token']:,} | {r['kv_reduction_pct']:.1f}% "
            f"| {r['decode_tps']:.1f} | {_fmt(r['speedup_vs_full_mla'], '.2f')}"
            f"{'×' if r['speedup_vs_full_mla'] is not None else ''} |")
    return head + "\n".join(lines) + "\n"


def _row(rows, variant):
    return next((r for r in rows if r["variant"] == variant), None)


def _resolved(a, b):
    """True when a and b differ by more than half the sum of their seed ranges."""
    noise = 0.5 * ((a["val_loss_max"] - a["val_loss_min"]) + (b["val_loss_max"] - b["val_loss_min"]))
    return abs(a["val_loss"] - b["val_loss"]) > noise


def _pct(a, b):
    return 100.0 * (a["val_loss"] - b["val_loss"]) / b["val_loss"]


def _seeds_note(a, b):
    n = min(len(a.get("seeds", [0])), len(b.get("seeds", [0])))
    if n < 2:
        return "one seed: the seed spread is not measured for this pair"
    return ("outside the seed spread" if _resolved(a, b) else
            "NOT resolved: within the seed spread")


def claims(rows):
    """The paper's claims, each with this table's figures, the table.json rows
    and fields it rests on, and a verdict (rows already passed through derive).
    Claims whose variants are missing are left out."""
    out = []
    mha, mla_rope, mla_full = _row(rows, "mha"), None, None
    half = [r for r in rows if r["attention"] == "mla_rope" and 2 * r["kv_rank"] == r["d_model"]]
    mla_rope = half[0] if half else None
    mla_half = next((r for r in rows if r["attention"] == "mla" and 2 * r["kv_rank"] == r["d_model"]), None)
    mla_full = next((r for r in rows if r["attention"] == "mla" and r["kv_rank"] == r["d_model"]), None)
    plain_mla = [r for r in rows if r["attention"] == "mla"]
    if mha and mla_rope:
        d = _pct(mla_rope, mha)
        multi = len(mla_rope.get("seeds", [0])) > 1 and len(mha.get("seeds", [0])) > 1
        if multi and not _resolved(mla_rope, mha):
            verdict = "agrees: no difference beyond the seed spread"
        elif abs(d) <= 1.0:
            verdict = "agrees (within 1%)"
        else:
            verdict = f"no: MLA+RoPE is {'better' if d < 0 else 'worse'} than MHA by {abs(d):.1f}%"
        out.append({"claim": "MLA+RoPE r=d/2 matches MHA's validation loss", "paper": "+0.3%",
                    "here": f"{d:+.2f}% ({mla_rope['val_loss']:.4f} vs {mha['val_loss']:.4f}; "
                            f"{_seeds_note(mla_rope, mha)})",
                    "rows": [mla_rope["variant"], mha["variant"]], "fields": ["val_loss", "delta_vs_mha_pct"],
                    "verdict": verdict})
    if mha and plain_mla:
        ds = [(r["variant"], _pct(r, mha)) for r in plain_mla]
        worse = [d for _, d in ds if d > 0]
        in_range = [d for _, d in ds if 3.0 <= d <= 5.0]
        verdict = ("agrees" if len(in_range) == len(ds) else
                   "direction agrees, size differs" if len(worse) == len(ds) else
                   "no: MLA without RoPE is not worse than MHA for " +
                   ", ".join(v for v, d in ds if d <= 0))
        out.append({"claim": "MLA without RoPE is 3–5% worse than MHA", "paper": "+3% to +5%",
                    "here": ", ".join(f"{v} {d:+.2f}%" for v, d in ds),
                    "rows": [v for v, _ in ds] + [mha["variant"]], "fields": ["delta_vs_mha_pct"],
                    "verdict": verdict})
    if mla_rope and mla_half:
        d = _pct(mla_rope, mla_half)
        vs_mha = _pct(mla_rope, mha) if mha else None
        verdict = ("agrees: RoPE improves MLA" if d < 0 else "no: RoPE does not improve MLA")
        if vs_mha is not None:
            verdict += (" and MLA+RoPE beats MHA" if vs_mha < 0 else ", but MLA+RoPE does not beat MHA")
        out.append({"claim": "RoPE lifts MLA from 3–5% worse than MHA to 2% better",
                    "paper": "MLA+RoPE vs MLA ≈ −5% to −7%; MLA+RoPE vs MHA −2%",
                    "here": f"{mla_rope['variant']} vs {mla_half['variant']} {d:+.2f}%"
                            + (f"; vs MHA {vs_mha:+.2f}%" if vs_mha is not None else ""),
                    "rows": [mla_rope["variant"], mla_half["variant"]] + ([mha["variant"]] if mha else []),
                    "fields": ["val_loss", "delta_vs_mha_pct"], "verdict": verdict})
    if mla_rope:
        red = mla_rope["kv_reduction_pct"]
        out.append({"claim": "MLA+RoPE r=d/2 cuts the KV cache by 45%", "paper": "45%",
                    "here": f"{red:.1f}% ({mla_rope['kv_bytes_per_token']:,} vs "
                            f"{mla_rope['mha_kv_bytes_per_token']:,} bytes/token)",
                    "rows": [mla_rope["variant"]], "fields": ["kv_bytes_per_token", "kv_reduction_pct"],
                    "verdict": "larger reduction: this cache holds only the latent (r) and the shared "
                               "rotary key (d_R) per layer, against 2·d for MHA"})
    if mla_rope and mla_full:
        sp = mla_rope["decode_tps"] / mla_full["decode_tps"]
        out.append({"claim": "r=d/2 decodes 1.4× faster than full-rank MLA", "paper": "1.4×",
                    "here": f"{sp:.2f}× ({mla_rope['decode_tps']:.1f} vs {mla_full['decode_tps']:.1f} tok/s, "
                            f"{mla_rope['decode_cell']})",
                    "rows": [mla_rope["variant"], mla_full["variant"]], "fields": ["decode_tps"],
                    "verdict": "agrees" if sp >= 1.3 else
                               ("faster, by less" if sp > 1.0 else "no speed-up at this size")})
    return out


def claims_markdown(claims_list):
    head = "| claim | paper | here | rows of table.json | verdict |\n|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {c['claim']} | {c['paper']} | {c['here']} | {', '.join(c['rows'])} "
        f"({', '.join(c['fields'])}) | {c['verdict']} |" for c in claims_list) + "\n"


def compare_markdown(rows, old_rows, old_label):
    """Δ vs MHA here beside Δ vs MHA of an earlier table (rows of its table.json)."""
    old = {r["variant"]: r for r in old_rows}
    lines = [f"| variant | Δ vs MHA here | Δ vs MHA, {old_label} |", "|---|---:|---:|"]
    for r in rows:
        o = old.get(r["variant"])
        lines.append(f"| {r['variant']} | {_fmt(r['delta_vs_mha_pct'], '+.2f')}% | "
                     f"{_fmt(o.get('delta_vs_mha_pct') if o else None, '+.2f')}"
                     f"{'%' if o and o.get('delta_vs_mha_pct') is not None else ''} |")
    return "\n".join(lines) + "\n"


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


def write_report(out_dir, rows, command="", notes="", compare=None):
    """Writes report.md, loss_curves.png, pareto.png and table.json into out_dir
    from per-run rows (one or more seeds per variant); returns the combined rows
    in table order with the derived columns. compare: (label, rows of an earlier
    table.json) for a side-by-side Δ vs MHA."""
    rows = derive(combine_seeds(rows))
    os.makedirs(out_dir, exist_ok=True)
    plot_loss_curves(rows, os.path.join(out_dir, "loss_curves.png"))
    plot_pareto(rows, os.path.join(out_dir, "pareto.png"))
    cells = sorted({r["decode_cell"] for r in rows})
    sources = sorted({r["val_source"] for r in rows})
    claim_list = claims(rows)
    md = ["# Paper table: MHA vs MLA vs MLA+RoPE", ""]
    if command:
        md += ["Command:", "", "```sh", command, "```", ""]
    md += [table_markdown(rows),
           f"* val loss: {', '.join(sources)}, the mean over the seeds listed; the same data order "
           "and token budget for every variant.",
           "* Δ vs MHA: relative change of the validation loss against `mha` (negative is better).",
           f"* plateau: whether the validation loss changed by less than {PLATEAU_TOLERANCE_PCT:g}% over "
           f"the last {100 * PLATEAU_WINDOW:g}% of the steps (in brackets: the largest drop over the seeds, "
           f"then the same over the last {100 * WIDE_WINDOW:g}%).",
           "* KV bytes/token: the decoder's cache for one token over all layers in fp32 "
           "(bf16 is half); reduction against MHA of the same size.",
           f"* decode tok/s: `mla-eval --task=report`, {'; '.join(cells)} (median over the seeds' "
           "checkpoints); speed-up against full-rank MLA (`mla`, r = d).",
           "", "![loss curves](loss_curves.png)", "", "![Pareto](pareto.png)", ""]
    if claim_list:
        md += ["## The paper's claims", "", claims_markdown(claim_list)]
    if compare:
        label, old_rows = compare
        md += [f"## Against the {label}", "", compare_markdown(rows, old_rows, label)]
    if notes:
        md += [notes, ""]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(md))
    table = {"rows": [{k: v for k, v in r.items() if k not in ("progress", "validation", "runs")}
                      | {"runs": [{k: v for k, v in x.items() if k not in ("progress", "validation")}
                                  for x in r["runs"]]} for r in rows],
             "claims": claim_list,
             "plateau_rule": {"window": PLATEAU_WINDOW, "tolerance_pct": PLATEAU_TOLERANCE_PCT,
                              "also_reported_window": WIDE_WINDOW}}
    with open(os.path.join(out_dir, "table.json"), "w") as f:
        json.dump(table, f, indent=1)
    return rows
