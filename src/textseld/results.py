"""The results table: join every run's metrics and weights files; recompute nothing.

Input: one `RunRecord` per trained model (system name, seed, one metrics JSON
per protocol written by `textseld evaluate --out`, its run directory's
`weights.json`).
Output:
- `runs.csv`: one row per (system, seed), the run's own numbers and 95 %
  intervals (long form, nothing averaged);
- `comparison.csv`: one row per system (Baseline first, then the paper's
  order), for each protocol (`dcase2025`, `strict`) and metric (F20/1 in %,
  DOAE in degrees, RDE in %): mean and standard deviation over seeds (ddof=1;
  empty with one seed) and the interval (mean over seeds of each run's
  bootstrap interval bounds); for every system but the Baseline its difference
  to the Baseline (seed means) and, for every text system whose control (same
  source and head, text encoder "identity") is in the table, its difference to
  that control, each with a paired bootstrap interval over the test
  clips (one resample of clips applied to every run of both systems; needs the
  per-clip statistics that `textseld evaluate --clip-stats` writes, else left
  empty, and `comparison.md` says why); number of seeds; in words, the weights each encoder started from;
  and what produced the row (PROVENANCE_COLUMNS, from each run's
  provenance.json, textseld.provenance, and the test clips scored): the data
  source and clips per split, the recipe, the model size, the training
  settings that depart from the recipe, the code version and the digest of the
  resolved config (a system's seeds that differ are listed, joined by "; ").
  Runs of different data or recipes are refused in one table unless
  `allow_mixed` (the error names them);
- `comparison.md`: the same as a Markdown table (mean ± std [interval]);
- a figure: one panel per metric, bars per system and protocol, error bars =
  std over seeds (or the interval with one seed);
- the alignment diagnostics of the text systems (`textseld.metrics.alignment`, one JSON per run,
  optional): columns `alignment_*` in both tables (mean and sd over seeds of the mean cosine, R@1
  and R@10 in %, the median rank; the number N of distinct sentences and the chance levels) and
  their own figure (`plot_alignment`). Systems without them (the Baseline) leave them empty.

Metrics JSON layout (one file per protocol, as written by `textseld evaluate
--out`, i.e. `textseld.metrics.evaluate.evaluate_dirs`): `protocol`, `F`, `DOAE`,
`RDE` (F and RDE fractions, DOAE degrees, null = undefined) and optionally
`ci` = `{"F": [low, high], "DOAE": [...], "RDE": [...]}` in the same units.
A missing interval is reported as empty, never invented.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textseld.atomic import atomic_path, write_text_atomic
from textseld.constants import HEAD_NAMES, IDENTITY, PROTOCOLS, SOURCES, TEXTS

log = logging.getLogger(__name__)

# (key in the metrics JSON, column stem, scale to the reported unit, label)
METRICS = (
    ("F", "F20_1_pct", 100.0, "F20°/1 (%)"),
    ("DOAE", "DOAE_deg", 1.0, "DOAE (°)"),
    ("RDE", "RDE_pct", 100.0, "RDE (%)"),
)
# How the tables spell each model name (a name without its spelling fails here).
_LABELS = {
    "beats": "BEATs",
    "rcc": "RCC",
    "clip": "CLIP",
    "bert": "BERT",
    "identity": "Identity",
    "grep": "GREP",
    "trep": "TREP",
}
SOURCE_LABELS = {name: _LABELS[name] for name in SOURCES}
TEXT_LABELS = {name: _LABELS[name] for name in TEXTS}
HEAD_LABELS = {name: _LABELS[name] for name in HEAD_NAMES}
# The paper's row order (docs/METHOD.md section 9); systems not listed follow, sorted.
PAPER_ORDER = (
    "Baseline",
    "BEATs-CLIP-GREP",
    "BEATs-BERT-GREP",
    "RCC-CLIP-GREP",
    "RCC-BERT-GREP",
    "BEATs-CLIP-TREP",
    "BEATs-BERT-TREP",
    "RCC-CLIP-TREP",
    "RCC-BERT-TREP",
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
    provenance: Path | None = None  # the run's provenance.json
    alignment: Path | None = None  # the run's alignment diagnostics (text systems only)


# The alignment diagnostics (textseld.metrics.alignment): (key in its JSON, column stem, scale to
# the reported unit, label); with their chance levels (key in its "chance" object).
ALIGNMENT = (
    ("cosine_mean", "alignment_cosine", 1.0, "cos(A, sentence)"),
    ("R1", "alignment_R1_pct", 100.0, "R@1 (%)"),
    ("R10", "alignment_R10_pct", 100.0, "R@10 (%)"),
    ("median_rank", "alignment_median_rank", 1.0, "Median rank"),
)
ALIGNMENT_CHANCE = ("R1", "R10", "median_rank")
# per system: N distinct sentences, the chance levels, the mean cosine with every sentence
ALIGNMENT_EXTRA = (
    "alignment_sentences",
    "alignment_R1_pct_chance",
    "alignment_R10_pct_chance",
    "alignment_median_rank_chance",
    "alignment_cosine_to_all",
)

# What produced a row: the data, the recipe and its departures, the code, the config.
PROVENANCE_COLUMNS = (
    "data_source",
    "train_clips",
    "validation_clips",
    "test_clips",
    "recipe",
    "model_size",
    "departures",
    "code_version",
    "config_sha256",
)
# Rows that may share a table: same data, same recipe (unless allow_mixed).
SETUP_COLUMNS = ("data_source", "train_clips", "validation_clips", "test_clips", "recipe")


def run_records(runs: list[dict]) -> list[RunRecord]:
    """Plain dicts {system, seed, metrics: {protocol: path}, weights} (the workflow's params) -> records."""
    out = []
    for i, run in enumerate(runs):
        missing = {"system", "seed", "metrics"} - set(run)
        if missing:
            raise ResultsError(f"run #{i}: missing key(s) {sorted(missing)}; got {sorted(run)}")
        out.append(
            RunRecord(
                system=str(run["system"]),
                seed=int(run["seed"]),
                metrics={p: Path(v) for p, v in dict(run["metrics"]).items()},
                weights=Path(run["weights"]) if run.get("weights") else None,
                provenance=Path(run["provenance"]) if run.get("provenance") else None,
                alignment=Path(run["alignment"]) if run.get("alignment") else None,
            )
        )
    return out


def system_name(model: str) -> str:
    """Workflow model id -> table name: "baseline" -> "Baseline", "rcc-clip-grep" -> "RCC-CLIP-GREP"."""
    if model == "baseline":
        return "Baseline"
    parts = model.split("-")
    if len(parts) != 3 or parts[0] not in SOURCES or parts[1] not in TEXTS or parts[2] not in HEAD_NAMES:
        raise ValueError(
            f"model id {model!r}: expected 'baseline' or '<source>-<text>-<head>' with source in "
            f"{sorted(SOURCES)}, text in {sorted(TEXTS)}, head in {sorted(HEAD_NAMES)}"
        )
    return f"{SOURCE_LABELS[parts[0]]}-{TEXT_LABELS[parts[1]]}-{HEAD_LABELS[parts[2]]}"


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


def _sha(info: dict) -> str:
    sha = info.get("sha256")
    return sha[:8] if isinstance(sha, str) else ""


def _describe_text(info, preset: str | None) -> str:
    """weights.json "text_encoder" entry -> e.g. "CLIP text tower, random init, 384x4" or
    "all-MiniLM-L6-v2 (pretrained, 53aa5117)"."""
    if not isinstance(info, dict):
        return "" if info is None else str(info)
    kind = info.get("kind")
    if kind == IDENTITY:  # the control: "identity (no text encoder)"
        return str(info.get("source") or IDENTITY)
    shape = f"{info['width']}x{info['layers']}" if "width" in info and "layers" in info else ""
    if info.get("source") == "random init":
        what = "CLIP text tower" if kind == "clip" else "BERT" if kind == "bert" else str(kind or "text encoder")
        return ", ".join(x for x in (what, "random init", shape) if x)
    name = preset or os.path.basename(str(info.get("file") or info.get("path") or "")) or str(kind)
    if kind == "clip" and not preset:
        name = f"CLIP {info.get('arch', '')} text tower ({info.get('pretrained') or 'weights file'})".replace("  ", " ")
    sha = _sha(info)
    return f"{name} (pretrained, {sha})" if sha else f"{name} (pretrained)"


def _describe_source(info, source: str | None, model: dict, tokenizer) -> str:
    """weights.json "source_encoder" (+ "pretrained_tokenizer") -> e.g. "BEATs (small), random init;
    tokenizer ADPIT-pretrained here (98f2cf7a)"."""
    if info is None and tokenizer is None:
        return ""
    if source == "beats":
        arch = model.get("beats_arch")
        what = f"BEATs ({arch})" if arch else "BEATs"
    else:
        what = {"rcc": "RCC"}.get(source or "", "source encoder")
    if isinstance(info, dict):
        start = info.get("beats") or info.get("file") or info.get("source") or ""
        start = start if start == "random init" else os.path.basename(str(start))
    else:
        start = str(info or "random init")
    text = f"{what}, {start}"
    if isinstance(tokenizer, dict):
        sha = _sha(tokenizer)
        text += f"; tokenizer ADPIT-pretrained here ({sha})" if sha else "; tokenizer ADPIT-pretrained here"
    return text


def describe_weights(path: Path | None) -> dict[str, str]:
    """A run's weights.json -> {"source_weights": ..., "text_weights": ...} in words.

    weights.json (written by textseld.train.runs) maps each pretrained component
    ("source_encoder", "text_encoder", "pretrained_tokenizer") to what it
    started from (a file and its sha256, or random init). The run's config.json
    next to it, when present, gives the encoder preset and source names. The
    baseline has neither encoder: "".
    """
    if path is None:
        return {"source_weights": "", "text_weights": ""}
    data = _load_json(path, "weights")
    config_path = Path(path).with_name("config.json")
    config = _load_json(config_path, "run config") if config_path.is_file() else {}
    text = config.get("text")
    preset = (config.get("text_encoder") or {}).get(text) if text else None
    return {
        "source_weights": _describe_source(
            data.get("source_encoder"),
            config.get("source"),
            config.get("model") or {},
            data.get("pretrained_tokenizer"),
        ),
        "text_weights": _describe_text(data.get("text_encoder"), preset if isinstance(preset, str) else None),
    }


def _code_version(code) -> str:
    """provenance.json "code" -> "1a2b3c4d5e6f", "1a2b3c4d5e6f (dirty)" or "textseld 0.1.0 (no git checkout)"."""
    if not isinstance(code, dict):
        return ""
    if code.get("commit"):
        return str(code["commit"])[:12] + (" (dirty)" if code.get("dirty") else "")
    return f"textseld {code.get('version', '?')} (no git checkout)"


def _departures(found) -> str:
    if not isinstance(found, dict):
        return ""
    if not found:
        return "none"
    return ", ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted(found.items()))


def read_provenance(path: Path | None, metrics: dict) -> dict:
    """A run's provenance.json (None or absent: every field empty, i.e. unknown) and the test
    clips its strict-protocol metrics scored -> {column of PROVENANCE_COLUMNS: value}."""
    strict = _load_json(Path(metrics["strict"]), "metrics") if "strict" in metrics else {}
    row: dict = dict.fromkeys(PROVENANCE_COLUMNS, "")
    row["test_clips"] = strict.get("n_clips", "")
    if path is None or not Path(path).is_file():
        return row
    data = _load_json(Path(path), "provenance")
    where = data.get("data") or {}
    sha = data.get("config_sha256")
    row.update(
        data_source=where.get("source") or "",
        train_clips=where.get("train_clips", ""),
        validation_clips=where.get("validation_clips", ""),
        recipe=data.get("recipe") or "",
        model_size=data.get("model_size") or "",
        departures=_departures(data.get("departures")),
        code_version=_code_version(data.get("code")),
        config_sha256=sha[:16] if isinstance(sha, str) else "",
    )
    return row


def read_alignment(path: Path | None) -> dict:
    """A run's alignment JSON (None: a run without one, every column None) -> its table columns."""
    row: dict = {stem: None for _, stem, _, _ in ALIGNMENT} | dict.fromkeys(ALIGNMENT_EXTRA)
    if path is None:
        return row
    data = _load_json(Path(path), "alignment")
    chance = data.get("chance")
    if not isinstance(chance, dict):
        raise ResultsError(f"{path}: key 'chance' missing or not an object")
    for key, stem, scale, _ in ALIGNMENT:
        if key not in data:
            raise ResultsError(f"{path}: key {key!r} missing")
        row[stem] = _number(data[key], Path(path), key) * scale
        if key in ALIGNMENT_CHANCE:
            if key not in chance:
                raise ResultsError(f"{path}: key 'chance.{key}' missing")
            row[f"{stem}_chance"] = _number(chance[key], Path(path), f"chance.{key}") * scale
    for key, col in (("n_sentences", "alignment_sentences"), ("cosine_to_all_mean", "alignment_cosine_to_all")):
        if key not in data:
            raise ResultsError(f"{path}: key {key!r} missing")
        row[col] = _number(data[key], Path(path), key)
    return row


def check_one_setup(run_rows: list[dict]) -> None:
    """Refuse rows of different data or recipes (SETUP_COLUMNS), naming the runs of each."""
    groups: dict[tuple, list[str]] = {}
    for row in run_rows:
        groups.setdefault(tuple(row[c] for c in SETUP_COLUMNS), []).append(f"{row['system']} seed {row['seed']}")
    if len(groups) < 2:
        return
    described = "; ".join(
        f"[data {key[0] or '?'}, {key[1]}/{key[2]}/{key[3]} train/validation/test clips, recipe {key[4] or '?'}]: "
        + ", ".join(names)
        for key, names in groups.items()
    )
    raise ResultsError(
        f"runs of different data or recipes in one table: {described}. Aggregate them separately, "
        "or allow it explicitly (config key aggregate.allow_mixed, textseld aggregate --allow-mixed)"
    )


def read_clip_stats(path: Path) -> tuple[list[str], np.ndarray] | None:
    """The per-clip statistics of a metrics JSON ("clip_stats", from `textseld evaluate
    --clip-stats`): (clip names, (n_clips, C, 7) array), or None when the file has none."""
    res = _load_json(Path(path), "metrics")
    cs = res.get("clip_stats")
    if cs is None:
        return None
    try:
        names = [str(n) for n in cs["names"]]
        stats = np.asarray(cs["stats"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{path}: clip_stats: expected names and stats (n_clips, C, 7) ({exc})") from None
    if stats.ndim != 3 or stats.shape[0] != len(names):
        raise ResultsError(f"{path}: clip_stats: stats shape {stats.shape} does not fit {len(names)} names")
    return names, stats


def control_system(system: str) -> str | None:
    """A text system's control, same source and head with the identity for its text encoder
    ("BEATs-CLIP-GREP" -> "BEATs-Identity-GREP"); None for the Baseline, the controls and other names."""
    parts = system.split("-")
    text_names = {label: name for name, label in TEXT_LABELS.items()}
    if len(parts) != 3 or text_names.get(parts[1]) in (None, IDENTITY):
        return None
    return "-".join([parts[0], TEXT_LABELS[IDENTITY], parts[2]])


def control_differences(
    runs: list[RunRecord], n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, dict[str, tuple[float, float, float]]]]:
    """As `paired_differences`, each text system against its control (`control_system`) where
    that control has runs: what the frozen text encoder adds over the same tokens read directly."""
    systems = {r.system for r in runs}
    pairs = {s: c for s in systems if (c := control_system(s)) is not None and c in systems}
    return paired_differences(runs, n_boot=n_boot, seed=seed, reference=pairs)


def paired_differences(
    runs: list[RunRecord],
    baseline: str = "Baseline",
    n_boot: int = 1000,
    seed: int = 0,
    reference: dict[str, str] | None = None,
) -> dict[str, dict[str, dict[str, tuple[float, float, float]]]]:
    """{system: {protocol: {metric key: (diff, ci_low, ci_high)}}} in reported units: each
    system's seed-mean score minus the Baseline's, with a paired bootstrap interval over
    the test clips (same clips, same resamples for both). Systems, or protocols, whose
    runs lack per-clip statistics are left out (never invented). reference: system -> the
    system it is compared with instead (None: every other system with `baseline`)."""
    from textseld.metrics.bootstrap import paired_bootstrap_difference

    by_system: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_system.setdefault(run.system, []).append(run)
    if reference is None:
        reference = {s: baseline for s in by_system if s != baseline}
    pairs = {s: r for s, r in reference.items() if s in by_system and r in by_system and s != r}
    out: dict[str, dict[str, dict[str, tuple[float, float, float]]]] = {}
    for proto in PROTOCOLS:
        for system, ref in pairs.items():
            base_found = [read_clip_stats(r.metrics[proto]) for r in by_system[ref] if proto in r.metrics]
            base = [b for b in base_found if b is not None]
            if not base or len(base) < len(base_found):
                continue
            names = base[0][0]
            sys_runs = by_system[system]
            other_found = [read_clip_stats(r.metrics[proto]) for r in sys_runs if proto in r.metrics]
            other = [o for o in other_found if o is not None]
            if not other or len(other) < len(other_found):
                continue
            for run, (run_names, _) in zip(by_system[ref] + sys_runs, base + other):
                if run_names != names:
                    raise ResultsError(
                        f"{run.metrics[proto]}: scored other test clips than "
                        f"{by_system[ref][0].metrics[proto]}; a paired comparison needs "
                        f"the same clips"
                    )
            res = paired_bootstrap_difference([b[1] for b in base], [o[1] for o in other], n_boot=n_boot, seed=seed)
            out.setdefault(system, {})[proto] = {
                key: (res[key]["diff"] * scale, res[key]["ci"][0] * scale, res[key]["ci"][1] * scale)
                for key, _, scale, _ in METRICS
            }
    return out


def why_no_differences(runs: list[RunRecord], baseline: str = "Baseline") -> str | None:
    """Why some system's Δ-vs-Baseline columns are empty (None when every system has them):
    no Baseline run, or metrics files without per-clip statistics (named)."""
    if all(r.system == baseline for r in runs):
        return None
    if not any(r.system == baseline for r in runs):
        return f"no {baseline} run was given: the Δ columns compare each system with it"
    lacking = [
        r.metrics[p] for r in runs for p in PROTOCOLS if p in r.metrics and read_clip_stats(r.metrics[p]) is None
    ]
    if not lacking:
        return None
    more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
    return (
        f"the Δ columns are empty where a metrics file holds no per-clip statistics ({lacking[0]}{more}): "
        "the paired interval needs them; score the predictions again with `textseld evaluate --clip-stats`"
    )


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
            sys_cols += [
                f"{proto}_{stem}_mean",
                f"{proto}_{stem}_std",
                f"{proto}_{stem}_ci_low",
                f"{proto}_{stem}_ci_high",
                f"{proto}_{stem}_vs_baseline",
                f"{proto}_{stem}_vs_baseline_ci_low",
                f"{proto}_{stem}_vs_baseline_ci_high",
                f"{proto}_{stem}_vs_control",
                f"{proto}_{stem}_vs_control_ci_low",
                f"{proto}_{stem}_vs_control_ci_high",
            ]
    for _, stem, _, _ in ALIGNMENT:
        run_cols.append(stem)
        sys_cols += [f"{stem}_mean", f"{stem}_std"]
    run_cols += list(ALIGNMENT_EXTRA)
    sys_cols += list(ALIGNMENT_EXTRA)
    run_cols += ["source_weights", "text_weights", *PROVENANCE_COLUMNS]
    sys_cols += ["source_weights", "text_weights", *PROVENANCE_COLUMNS]
    return run_cols, sys_cols


def build_tables(
    runs: list[RunRecord], n_boot: int = 1000, seed: int = 0, allow_mixed: bool = False
) -> tuple[list[dict], list[dict]]:
    """-> (one row per run, one row per system); numbers in reported units, None = not available.
    n_boot, seed: the paired bootstrap of each system's difference to the Baseline. Runs of
    different data or recipes raise ResultsError naming them, unless allow_mixed."""
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
                row.update({f"{proto}_{stem}": value, f"{proto}_{stem}_ci_low": low, f"{proto}_{stem}_ci_high": high})
        row.update(read_alignment(run.alignment))
        row.update(describe_weights(run.weights))
        row.update(read_provenance(run.provenance, run.metrics))
        run_rows.append(row)
    if not allow_mixed:
        check_one_setup(run_rows)
    order = _order({r["system"] for r in run_rows})
    run_rows.sort(key=lambda r: (order.index(r["system"]), r["seed"]))

    diffs = {
        "baseline": paired_differences(runs, n_boot=n_boot, seed=seed),
        "control": control_differences(runs, n_boot=n_boot, seed=seed),
    }
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
                    out[f"{proto}_{stem}_{side}"] = None if any(b is None for b in bounds) else _mean_std(bounds)[0]
        for proto in PROTOCOLS:
            for key, stem, _, _ in METRICS:
                for against, found in diffs.items():
                    diff = found.get(system, {}).get(proto, {}).get(key)
                    for i, suffix in enumerate(("", "_ci_low", "_ci_high")):
                        out[f"{proto}_{stem}_vs_{against}{suffix}"] = None if diff is None else diff[i]
        for _, stem, _, _ in ALIGNMENT:
            values = [r[stem] for r in rows if r[stem] is not None]
            out[f"{stem}_mean"], out[f"{stem}_std"] = _mean_std(values) if values else (None, None)
        for col in ALIGNMENT_EXTRA:  # the same test split for every seed: equal, but mean them anyway
            values = [r[col] for r in rows if r[col] is not None]
            out[col] = _mean_std(values)[0] if values else None
        for col in ("source_weights", "text_weights"):
            out[col] = "; ".join(sorted({r[col] for r in rows if r[col]}))
        for col in PROVENANCE_COLUMNS:
            values = sorted({str(r[col]) for r in rows if r[col] != ""})
            out[col] = rows[0][col] if len(values) == 1 else "; ".join(values)
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


def _cell(row: dict, proto: str, stem: str) -> str:
    cell = _fmt(row[f"{proto}_{stem}_mean"]) or "n/a"
    if row[f"{proto}_{stem}_std"] is not None:
        cell += f" ± {_fmt(row[f'{proto}_{stem}_std'])}"
    low, high = row[f"{proto}_{stem}_ci_low"], row[f"{proto}_{stem}_ci_high"]
    if row["n_seeds"] == 1 and _fmt(low) and _fmt(high):
        cell += f" [{_fmt(low)}, {_fmt(high)}]"  # one seed: the run's own interval
    return cell


def _alignment_cell(row: dict, stem: str, digits: int) -> str:
    mean = row.get(f"{stem}_mean")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    cell = f"{mean:.{digits}f}"
    if row[f"{stem}_std"] is not None:
        cell += f" ± {row[f'{stem}_std']:.{digits}f}"
    chance = row.get(f"{stem}_chance")
    if chance is not None:
        cell += f" (chance {chance:.{digits}f})"
    return cell


def _diff_cell(row: dict, proto: str, stem: str, against: str = "baseline") -> str:
    diff = row.get(f"{proto}_{stem}_vs_{against}")
    if diff is None or (isinstance(diff, float) and math.isnan(diff)):
        return "-"
    low, high = row[f"{proto}_{stem}_vs_{against}_ci_low"], row[f"{proto}_{stem}_vs_{against}_ci_high"]
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]"


def markdown_table(sys_rows: list[dict]) -> str:
    """Markdown: one row per system. dcase2025 scores as 'mean ± sd' over seeds (a single
    seed shows its own 95 % interval instead), the difference to the Baseline with its
    paired 95 % interval, the strict scores, and the weights in words."""
    main, strict = PROTOCOLS
    header = ["System", "Seeds"] + [f"{label}" for _, _, _, label in METRICS]
    header += ["ΔF20°/1 vs Baseline (points)", "ΔDOAE vs Baseline (°)"]
    header += ["ΔF20°/1 vs control (points)", "ΔDOAE vs control (°)", "ΔRDE vs control (points)"]
    header += [f"{label} {strict}" for _, _, _, label in METRICS]
    header += [f"Alignment {label}" for _, _, _, label in ALIGNMENT]
    header += ["Source weights", "Text weights"]
    header += ["Data (train/validation/test clips)", "Recipe", "Model size", "Departures from the recipe"]
    header += ["Code", "Config sha256"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in sys_rows:
        cells = [row["system"], str(row["n_seeds"])]
        cells += [_cell(row, main, stem) for _, stem, _, _ in METRICS]
        cells += [_diff_cell(row, main, "F20_1_pct"), _diff_cell(row, main, "DOAE_deg")]
        cells += [_diff_cell(row, main, stem, "control") for _, stem, _, _ in METRICS]
        cells += [_cell(row, strict, stem) for _, stem, _, _ in METRICS]
        cells += [_alignment_cell(row, stem, 3 if key == "cosine_mean" else 1) for key, stem, _, _ in ALIGNMENT]
        cells += [row["source_weights"] or "-", row["text_weights"] or "-"]
        clips = "/".join(str(row[c]) or "?" for c in ("train_clips", "validation_clips", "test_clips"))
        cells += [f"{row['data_source'] or '?'} ({clips})", row["recipe"] or "?", row["model_size"] or "?"]
        cells += [row["departures"] or "?", row["code_version"] or "?", row["config_sha256"] or "?"]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"\nTest split, {main} protocol unless marked {strict}. Mean ± standard deviation over seeds "
        "(with one seed: the run's 95 % bootstrap interval over clips in brackets). Δ: the system's "
        "seed mean minus the Baseline's, in brackets its 95 % paired bootstrap interval over the test "
        "clips (the same clips and resamples for both systems); an interval that excludes 0 is a "
        "difference these clips resolve. Δ vs control: the same for a text system against its control "
        "(same source, same head, the frozen text encoder replaced by the identity: the -Identity- "
        "rows), i.e. what the text encoder adds; controls have none. F20°/1 and RDE in %, DOAE in "
        "degrees. Each row says what produced it: the data and its clips per split, the recipe "
        "(textseld.recipes) and the training settings that depart from it, the model size, the code "
        "version (git commit) and the SHA-256 of the resolved workflow config (first 16 hex digits). "
        "Alignment (text systems): on the test "
        "frames with an event, A from audio against A of the frame's ground-truth sentence in the same "
        "template (docs/METHOD.md section 8): their mean cosine, and the rank of the true sentence among "
        "the test split's N distinct sentences by cosine (R@1, R@10 in %, median rank; chance 1/N, "
        "10/N, (N + 1)/2 in parentheses).\n"
    )
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
            means = np.array(
                [np.nan if r[f"{proto}_{stem}_mean"] is None else r[f"{proto}_{stem}_mean"] for r in sys_rows],
                dtype=float,
            )
            err = np.zeros((2, len(sys_rows)))
            for i, r in enumerate(sys_rows):
                if r[f"{proto}_{stem}_std"] is not None:
                    err[:, i] = r[f"{proto}_{stem}_std"]
                elif r[f"{proto}_{stem}_ci_low"] is not None and not math.isnan(means[i]):
                    err[:, i] = [
                        max(means[i] - r[f"{proto}_{stem}_ci_low"], 0.0),
                        max(r[f"{proto}_{stem}_ci_high"] - means[i], 0.0),
                    ]
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


def plot_alignment(sys_rows: list[dict], path: str | os.PathLike) -> None:
    """The alignment diagnostics of the systems that have them: panels cosine (the mean cosine with
    every sentence marked), R@1 and R@10 (chance marked); error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in sys_rows if r.get("alignment_cosine_mean") is not None]
    panels = [a for a in ALIGNMENT if a[0] != "median_rank"]
    width = len(panels) * (1.5 + 0.6 * max(len(rows), 2))
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.2), squeeze=False)
    x = np.arange(len(rows))
    for ax, (key, stem, _, label) in zip(axes[0], panels):
        ax.set_title(label)
        if not rows:
            ax.text(0.5, 0.5, "no text system with\na sentence embedding", ha="center", va="center")
            ax.set_axis_off()
            continue
        means = np.array([r[f"{stem}_mean"] for r in rows], dtype=float)
        err = np.array([r[f"{stem}_std"] or 0.0 for r in rows], dtype=float)
        ax.bar(x, means, 0.6, yerr=err, capsize=2, color="tab:blue")
        marks = [r.get("alignment_cosine_to_all") if key == "cosine_mean" else r.get(f"{stem}_chance") for r in rows]
        what = "mean cosine with every sentence" if key == "cosine_mean" else "chance"
        for i, m in enumerate(marks):
            if m is not None:
                ax.hlines(m, i - 0.35, i + 0.35, colors="k", linestyles="--", label=what if i == 0 else None)
        ax.set_xticks(x)
        ax.set_xticklabels([r["system"] for r in rows], rotation=60, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    suffix = Path(path).suffix
    with atomic_path(path, suffix=suffix) as tmp:
        fig.savefig(tmp, format=suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


def aggregate(
    runs: list[RunRecord],
    comparison_csv: str | os.PathLike,
    comparison_md: str | os.PathLike,
    figure: str | os.PathLike,
    runs_csv: str | os.PathLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    allow_mixed: bool = False,
    alignment_figure: str | os.PathLike | None = None,
) -> list[dict]:
    """Write the results table (CSV + Markdown), the per-run table and the figure; return the system rows.
    n_boot, seed: the paired bootstrap of the differences to the Baseline. allow_mixed: put runs
    of different data or recipes into one table (refused otherwise, before anything is written).
    alignment_figure: where to draw the text systems' alignment diagnostics (`plot_alignment`)."""
    run_rows, sys_rows = build_tables(runs, n_boot=n_boot, seed=seed, allow_mixed=allow_mixed)
    run_cols, sys_cols = _columns()
    write_text_atomic(comparison_csv, _csv_text(sys_rows, sys_cols))
    why = why_no_differences(runs)
    if why is not None:
        log.warning("%s: %s", comparison_md, why)
    write_text_atomic(comparison_md, markdown_table(sys_rows) + (f"\nNote: {why}.\n" if why else ""))
    if runs_csv is not None:
        write_text_atomic(runs_csv, _csv_text(run_rows, run_cols))
    plot_comparison(sys_rows, figure)
    if alignment_figure is not None:
        plot_alignment(sys_rows, alignment_figure)
    return sys_rows
