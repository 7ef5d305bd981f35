"""The results table: join every run's metrics and weights files; recompute nothing.

Input: one `RunRecord` per trained model (system name, seed, one metrics JSON
per protocol written by `textseld evaluate --json`, its run directory's
`weights.json`).
Output:
- `runs.csv`: one row per (system, seed), the run's own numbers and 95 %
  intervals (long form, nothing averaged);
- `comparison.csv`: one row per system (Baseline first, then the paper's
  order), for each protocol (`dcase2025`, `strict`) and metric (F20/1 in %,
  DOAE in degrees, RDE in %): mean and standard deviation over seeds (ddof=1;
  empty with one seed) and the interval (mean over seeds of each run's
  bootstrap interval bounds); number of seeds; the weights each encoder used;
- `comparison.md`: the same as a Markdown table (mean ± std [interval]);
- a figure: one panel per metric, bars per system and protocol, error bars =
  std over seeds (or the interval with one seed).

Metrics JSON layout (one file per protocol, as written by `textseld evaluate
--json`, i.e. `textseld.metrics.seld.evaluate_dirs`): `protocol`, `F`, `DOAE`,
`RDE` (F and RDE fractions, DOAE degrees, null = undefined) and optionally
`ci` = `{"F": [low, high], "DOAE": [...], "RDE": [...]}` in the same units.
A missing interval is reported as empty, never invented.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from textseld.atomic import atomic_path, write_text_atomic

PROTOCOLS = ("dcase2025", "strict")
# (key in the metrics JSON, column stem, scale to the reported unit, label)
METRICS = (
    ("F", "F20_1_pct", 100.0, "F20°/1 (%)"),
    ("DOAE", "DOAE_deg", 1.0, "DOAE (°)"),
    ("RDE", "RDE_pct", 100.0, "RDE (%)"),
)
SOURCE_NAMES = {"beats": "BEATs", "rcc": "RCC"}
TEXT_NAMES = {"clip": "CLIP", "bert": "BERT"}
HEAD_NAMES = {"grep": "GREP", "trep": "TREP"}
# The paper's row order (SPEC section 8); systems not listed follow, sorted.
PAPER_ORDER = (
    "Baseline",
    "BEATs-CLIP-GREP", "BEATs-BERT-GREP", "RCC-CLIP-GREP", "RCC-BERT-GREP",
    "BEATs-CLIP-TREP", "BEATs-BERT-TREP", "RCC-CLIP-TREP", "RCC-BERT-TREP",
)


class ResultsError(ValueError):
    """A metrics or weights file is missing or does not have the expected layout."""


@dataclass(frozen=True)
class RunRecord:
    """One trained model: `system` as in the table (e.g. "RCC-CLIP-GREP"), its seed and files."""

    system: str
    seed: int
    metrics: dict  # protocol -> metrics JSON path
    weights: Path | None = None


def run_records(runs: list[dict]) -> list[RunRecord]:
    """Plain dicts {system, seed, metrics: {protocol: path}, weights} (the workflow's params) -> records."""
    out = []
    for i, run in enumerate(runs):
        missing = {"system", "seed", "metrics"} - set(run)
        if missing:
            raise ResultsError(f"run #{i}: missing key(s) {sorted(missing)}; got {sorted(run)}")
        out.append(RunRecord(system=str(run["system"]), seed=int(run["seed"]),
                             metrics={p: Path(v) for p, v in dict(run["metrics"]).items()},
                             weights=Path(run["weights"]) if run.get("weights") else None))
    return out


def system_name(model: str) -> str:
    """Workflow model id -> table name: "baseline" -> "Baseline", "rcc-clip-grep" -> "RCC-CLIP-GREP"."""
    if model == "baseline":
        return "Baseline"
    parts = model.split("-")
    if len(parts) != 3 or parts[0] not in SOURCE_NAMES or parts[1] not in TEXT_NAMES or parts[2] not in HEAD_NAMES:
        raise ValueError(
            f"model id {model!r}: expected 'baseline' or '<source>-<text>-<head>' with source in "
            f"{sorted(SOURCE_NAMES)}, text in {sorted(TEXT_NAMES)}, head in {sorted(HEAD_NAMES)}"
        )
    return f"{SOURCE_NAMES[parts[0]]}-{TEXT_NAMES[parts[1]]}-{HEAD_NAMES[parts[2]]}"


def _load_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: {what} file not found") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_run_metrics(paths: dict) -> dict[str, dict[str, tuple[float, float | None, float | None]]]:
    """{protocol: metrics JSON} -> {protocol: {metric key: (value, ci_low, ci_high)}} in reported units."""
    out: dict[str, dict[str, tuple[float, float | None, float | None]]] = {}
    for proto in PROTOCOLS:
        if proto not in paths:
            raise ResultsError(f"no {proto} metrics file among {sorted(map(str, paths.values()))}")
        path = Path(paths[proto])
        res = _load_json(path, "metrics")
        if res.get("protocol", proto) != proto:
            raise ResultsError(f"{path}: holds protocol {res.get('protocol')!r}, expected {proto!r}")
        ci = res.get("ci") or {}
        if not isinstance(ci, dict):
            raise ResultsError(f"{path}: ci: expected an object, got {ci!r}")
        row = {}
        for key, _, scale, _ in METRICS:
            if key not in res:
                raise ResultsError(f"{path}: key {key!r} missing")
            value = _number(res[key], path, key) * scale
            bounds = ci.get(key)
            if bounds is None:
                low = high = None
            elif isinstance(bounds, (list, tuple)) and len(bounds) == 2:
                low = _number(bounds[0], path, f"ci.{key}[0]") * scale
                high = _number(bounds[1], path, f"ci.{key}[1]") * scale
            else:
                raise ResultsError(f"{path}: ci.{key}: expected [low, high], got {bounds!r}")
            row[key] = (value, low, high)
        out[proto] = row
    return out


def _number(value, path: Path, key: str) -> float:
    if value is None:  # DOAE/RDE are NaN (null in JSON) when nothing matched
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsError(f"{path}: {key}: expected a number, got {value!r}")
    return float(value)


def describe_weights(path: Path | None) -> dict[str, str]:
    """A run's weights.json -> {"source_weights": ..., "text_weights": ...} as short strings.

    weights.json (written by textseld.train.runs) maps each pretrained component
    ("source_encoder", "text_encoder", "pretrained_tokenizer") to a file and
    its sha256, or to "random init". The baseline has neither encoder: "".
    """
    if path is None:
        return {"source_weights": "", "text_weights": ""}
    data = _load_json(path, "weights")

    def short(info) -> str:
        if info is None:
            return ""
        if isinstance(info, str):
            return info
        if isinstance(info, dict):
            name = info.get("file") or info.get("name") or info.get("weights") or info.get("init") or ""
            sha = info.get("sha256")
            name = os.path.basename(str(name)) if name else json.dumps(info, sort_keys=True)
            return f"{name} ({sha[:12]})" if sha else name
        return json.dumps(info, sort_keys=True)

    return {"source_weights": short(data.get("source_encoder")), "text_weights": short(data.get("text_encoder"))}


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, None
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(var)


def _order(systems) -> list[str]:
    known = [s for s in PAPER_ORDER if s in systems]
    return known + sorted(s for s in systems if s not in PAPER_ORDER)


def _columns() -> tuple[list[str], list[str]]:
    run_cols, sys_cols = ["system", "seed"], ["system", "n_seeds", "seeds"]
    for proto in PROTOCOLS:
        for _, stem, _, _ in METRICS:
            run_cols += [f"{proto}_{stem}", f"{proto}_{stem}_ci_low", f"{proto}_{stem}_ci_high"]
            sys_cols += [f"{proto}_{stem}_mean", f"{proto}_{stem}_std",
                         f"{proto}_{stem}_ci_low", f"{proto}_{stem}_ci_high"]
    run_cols += ["source_weights", "text_weights"]
    sys_cols += ["source_weights", "text_weights"]
    return run_cols, sys_cols


def build_tables(runs: list[RunRecord]) -> tuple[list[dict], list[dict]]:
    """-> (one row per run, one row per system); numbers in reported units, None = not available."""
    if not runs:
        raise ResultsError("no runs to aggregate")
    seen = set()
    run_rows = []
    for run in runs:
        if (run.system, run.seed) in seen:
            raise ResultsError(f"run {run.system} seed {run.seed} listed twice")
        seen.add((run.system, run.seed))
        metrics = read_run_metrics(run.metrics)
        row: dict = {"system": run.system, "seed": run.seed}
        for proto in PROTOCOLS:
            for key, stem, _, _ in METRICS:
                value, low, high = metrics[proto][key]
                row.update({f"{proto}_{stem}": value, f"{proto}_{stem}_ci_low": low,
                            f"{proto}_{stem}_ci_high": high})
        row.update(describe_weights(run.weights))
        run_rows.append(row)
    order = _order({r["system"] for r in run_rows})
    run_rows.sort(key=lambda r: (order.index(r["system"]), r["seed"]))

    sys_rows = []
    for system in order:
        rows = [r for r in run_rows if r["system"] == system]
        out: dict = {"system": system, "n_seeds": len(rows), "seeds": " ".join(str(r["seed"]) for r in rows)}
        for proto in PROTOCOLS:
            for _, stem, _, _ in METRICS:
                mean, std = _mean_std([r[f"{proto}_{stem}"] for r in rows])
                out[f"{proto}_{stem}_mean"] = mean
                out[f"{proto}_{stem}_std"] = std
                for side in ("ci_low", "ci_high"):
                    bounds = [r[f"{proto}_{stem}_{side}"] for r in rows]
                    out[f"{proto}_{stem}_{side}"] = (None if any(b is None for b in bounds)
                                                     else _mean_std(bounds)[0])
        for col in ("source_weights", "text_weights"):
            out[col] = "; ".join(sorted({r[col] for r in rows if r[col]}))
        sys_rows.append(out)
    return run_rows, sys_rows


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_fmt(row[c], 4) for c in columns])
    return buf.getvalue()


def markdown_table(sys_rows: list[dict]) -> str:
    """Markdown: one row per system, 'mean ± std [low, high]' per protocol and metric."""
    header = ["System", "Seeds"]
    for proto in PROTOCOLS:
        header += [f"{label} {proto}" for _, _, _, label in METRICS]
    header += ["Source weights", "Text weights"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in sys_rows:
        cells = [row["system"], str(row["n_seeds"])]
        for proto in PROTOCOLS:
            for _, stem, _, _ in METRICS:
                cell = _fmt(row[f"{proto}_{stem}_mean"]) or "n/a"
                if row[f"{proto}_{stem}_std"] is not None:
                    cell += f" ± {_fmt(row[f'{proto}_{stem}_std'])}"
                low, high = row[f"{proto}_{stem}_ci_low"], row[f"{proto}_{stem}_ci_high"]
                if low is not None and high is not None:
                    cell += f" [{_fmt(low)}, {_fmt(high)}]"
                cells.append(cell)
        cells += [row["source_weights"] or "-", row["text_weights"] or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nTest split. Mean ± standard deviation over seeds; in brackets the 95 % interval "
            "(mean over seeds of each run's interval). F20°/1 and RDE in %, DOAE in degrees.\n")
    return "\n".join(lines) + "\n" + note


def plot_comparison(sys_rows: list[dict], path: str | os.PathLike) -> None:
    """Bar chart: one panel per metric, one bar per system and protocol."""
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and cluster nodes have no display
    import matplotlib.pyplot as plt
    import numpy as np

    systems = [r["system"] for r in sys_rows]
    x = np.arange(len(systems))
    width = 0.38
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 + 1.1 * len(systems), 4.2), squeeze=False)
    for ax, (_, stem, _, label) in zip(axes[0], METRICS):
        for k, proto in enumerate(PROTOCOLS):
            means = np.array([np.nan if r[f"{proto}_{stem}_mean"] is None else r[f"{proto}_{stem}_mean"]
                              for r in sys_rows], dtype=float)
            err = np.zeros((2, len(sys_rows)))
            for i, r in enumerate(sys_rows):
                if r[f"{proto}_{stem}_std"] is not None:
                    err[:, i] = r[f"{proto}_{stem}_std"]
                elif r[f"{proto}_{stem}_ci_low"] is not None and not math.isnan(means[i]):
                    err[:, i] = [max(means[i] - r[f"{proto}_{stem}_ci_low"], 0.0),
                                 max(r[f"{proto}_{stem}_ci_high"] - means[i], 0.0)]
            ax.bar(x + (k - 0.5) * width, means, width, yerr=err, capsize=2, label=proto)
        ax.set_title(label)
        ax.set_xticks(x)
        ax.set_xticklabels(systems, rotation=60, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    suffix = Path(path).suffix
    with atomic_path(path, suffix=suffix) as tmp:
        fig.savefig(tmp, format=suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


def aggregate(runs: list[RunRecord], comparison_csv: str | os.PathLike, comparison_md: str | os.PathLike,
              figure: str | os.PathLike, runs_csv: str | os.PathLike | None = None) -> list[dict]:
    """Write the results table (CSV + Markdown), the per-run table and the figure; return the system rows."""
    run_rows, sys_rows = build_tables(runs)
    run_cols, sys_cols = _columns()
    write_text_atomic(comparison_csv, _csv_text(sys_rows, sys_cols))
    write_text_atomic(comparison_md, markdown_table(sys_rows))
    if runs_csv is not None:
        write_text_atomic(runs_csv, _csv_text(run_rows, run_cols))
    plot_comparison(sys_rows, figure)
    return sys_rows
