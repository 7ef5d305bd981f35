"""A plan of a workflow config before it runs: jobs per rule, device-hours, wall time, disk.

`plan(config, records, gpus)` counts the jobs the workflow (rules/*.smk) plans
for a merged config and projects, from measured step times recorded per device
type (benchmarks/records/*.json), the device-hours of every rule that has a
measurement, the wall time of the training jobs on N devices, and the disk of
the features and the training checkpoints. A figure without a measurement of
its device is missing, never estimated from another device.

What the projections assume (printed with the plan):
- training: seconds per clip at the record's batch size x training clips (the
  training split minus the validation fraction) x epochs; validation passes and
  data loading beyond what the record's steps included are left out;
- features: clips / the best recorded clips/s of the device;
- checkpoints: 4 bytes per trainable parameter in best.pt (weights) and 12 in
  last.pt (weights and Adam's two moments), from the record's parameter counts;
- features on disk: float32 feature maps and targets of textseld.constants'
  shapes, once in the shards and once in the packed file of each split.

The records are JSON files of two kinds:
- training steps (benchmarks/bench_paper_size.py, benchmarks/gpu_check.py): {"device",
  "batch", "results": [{"system", "s_per_step", "params_trainable"}, ...]}, a result's
  own "batch" before the record's, optionally "device_name" (or "gpu"), "models_size"
  (absent: "paper", the size bench_paper_size.py measures) and "finetune"
  ({"freeze_tokenizer", "train_templates"}; absent: the paper's, false and random);
- feature throughput (benchmarks/bench_features_cuda.py): {"throughput":
  [{"device", "clips_per_s"}, ...], "cpu_baseline": {"device", "clips_per_s", "threads"}}.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from textseld.constants import (
    IDENTITY,
    N_ADPIT_SLOTS,
    N_CLASSES,
    N_FEAT_FRAMES,
    N_LABEL_FRAMES,
    N_MELS,
    PROTOCOLS,
)
from textseld.models.text_config import embeds_sentences
from textseld.recipes import merge
from textseld.setups import TRAIN_KINDS, resolve_grid

DEVICES = ("cpu", "cuda")
# a record without these keys measured the paper setup (bench_paper_size.py)
DEFAULT_RECORD_SIZE = "paper"
DEFAULT_RECORD_FINETUNE = {"freeze_tokenizer": False, "train_templates": "random"}
BYTES_BEST_PER_PARAM = 4  # float32 weights
BYTES_LAST_PER_PARAM = 12  # float32 weights + Adam's exp_avg and exp_avg_sq


class PlanError(ValueError):
    """A config or record the plan cannot use; the message names the file and key."""


# ------------------------------------------------------------------ the config
def _schema_defaults(node: Mapping, value: Any, definitions: Mapping) -> Any:
    """`value` with the schema's defaults filled in (what Snakemake's validate(set_default=True) does)."""
    if "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(value, dict):
        return value
    for key, sub in (node.get("properties") or {}).items():
        if "$ref" in sub:
            sub = definitions[sub["$ref"].rsplit("/", 1)[-1]] | {k: v for k, v in sub.items() if k != "$ref"}
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            value[key] = _schema_defaults(sub, value[key], definitions)
    return value


def load_config(paths: Sequence[str | Path], schema: str | Path) -> dict:
    """The workflow's config: `paths` merged in order over the recipe they name
    (textseld.recipes), then the schema's defaults."""
    if not paths:
        raise PlanError("no config file given: pass the workflow's config files, e.g. config/config.yaml")
    config: dict = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise PlanError(f"{path}: cannot read the config file: {exc}") from None
        except yaml.YAMLError as exc:
            raise PlanError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise PlanError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
        merge(config, data)  # as Snakemake merges --configfile files
    from textseld.recipes import RecipeError, apply_recipe

    try:  # the chosen recipe under the files' keys, as rules/common.smk resolves it
        config = apply_recipe(config)
    except RecipeError as exc:
        raise PlanError(f"{', '.join(map(str, paths))}: {exc}") from None
    try:
        schema_doc = yaml.safe_load(Path(schema).read_text())
    except OSError as exc:
        raise PlanError(f"{schema}: cannot read the config schema: {exc}") from None
    return _schema_defaults(schema_doc, config, schema_doc.get("definitions") or {})


def _train_configs(config: Mapping) -> dict:
    from textseld.train.config import TrainConfig

    train = config.get("train") or {}
    out = {}
    for kind in TRAIN_KINDS:
        try:
            out[kind] = TrainConfig.from_dict(train.get(kind) or {})
        except ValueError as exc:
            raise PlanError(f"config section train.{kind}: {exc}") from None
    return out


def planned_jobs(config: Mapping) -> dict[str, int]:
    """Jobs per rule, as rules/*.smk plan them for `config` (schema defaults filled), in
    the workflow's order; rules that plan no job are left out."""
    grid = resolve_grid(config.get("grid"))
    finetuned = len(grid["sources"]) * len(grid["texts"]) * len(grid["heads"])
    models = finetuned + (1 if grid["baseline"] else 0)
    seeds = len(config["seeds"])
    fin = _train_configs(config)["finetune"]
    fixed_tokenizer = fin.freeze_tokenizer
    encoded_training = fixed_tokenizer and fin.train_templates == "fixed"
    synthetic = config["data"]["source"] == "synthetic"
    sources_used = len(grid["sources"]) if finetuned else 0
    # the identity control reads the tokens (encode_tokens) and has no text-encoder outputs to encode
    controls = finetuned and IDENTITY in grid["texts"]
    # the text encoders that embed sentences: their outputs are encoded (encode_sentences) and they
    # have alignment diagnostics (rules embed_test_sentences, alignment)
    encoders = len([t for t in grid["texts"] if embeds_sentences(t)])
    aligned_texts = encoders if finetuned else 0
    aligned = len(grid["sources"]) * aligned_texts * len(grid["heads"])
    jobs = {
        "synthesize_dataset": 1 if synthetic else 0,
        "download_dataset": 0 if synthetic else 1,
        "download_pretrained": len(config["weights"]["fetch"]),
        "fingerprint_split": 2,  # the content fingerprints of the training and test splits
        "extract_features": 2 * config["features"]["shards"],  # train and test splits
        "pack_features": 2,
        "feature_stats": 1,
        # the training split's sentences (the text systems' alignment term, not the controls'); the
        # test split's for the alignment diagnostics
        "make_texts": (1 if finetuned and encoders else 0) + (1 if aligned else 0),
        "pretrain_tokenizer": sources_used,
        # the training split's tokens (random training templates, or the controls) and the test
        # split's (the controls' predictions)
        "encode_tokens": (int(controls or not encoded_training) + int(controls)) * sources_used
        if fixed_tokenizer
        else 0,
        # one job per part (validation, test, and train with fixed training templates)
        "encode_sentences": (len(grid["sources"]) * encoders * (3 if encoded_training else 2))
        if fixed_tokenizer and finetuned
        else 0,
        "train_baseline": seeds if grid["baseline"] else 0,
        "finetune": finetuned * seeds,
        "collect_references": 1,
        "predict": models * seeds,
        "evaluate": models * seeds * len(PROTOCOLS),
        "aggregate": 1,
        "training_curves": 1,
        "embed_test_sentences": aligned_texts,
        "alignment": aligned * seeds,
        # the Baseline and the grid's first text system of each head (rules/common.smk TIMELINE_MODELS)
        "timelines": (1 if grid["baseline"] else 0) + (len(grid["heads"]) if finetuned else 0),
        "all": 1,
    }
    return {rule: n for rule, n in jobs.items() if n}


# ----------------------------------------------------------------- the records
@dataclass
class Records:
    """Measured figures per device: training seconds per clip and parameter counts per
    system, feature clips/s; `sources` names the file each figure came from."""

    train: dict[str, dict[str, dict]] = field(default_factory=dict)  # device -> system -> figures
    features: dict[str, dict] = field(default_factory=dict)  # device -> {"clips_per_s", "source", ...}


def load_records(folder: str | Path, *, models_size: str, finetune_mode: Mapping) -> Records:
    """The records of `folder` that apply to a config of this model size and finetuning mode."""
    out = Records()
    folder = Path(folder)
    if not folder.is_dir():
        raise PlanError(f"{folder}: no such records folder (benchmarks/records of the checkout)")
    for path in sorted(folder.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: not a readable JSON record: {exc}") from None
        if not isinstance(rec, dict):
            continue
        if isinstance(rec.get("results"), list) and "device" in rec:
            _add_training(out, rec, path, models_size, finetune_mode)
        if isinstance(rec.get("throughput"), list):
            _add_features(out, rec, path)
    return out


def _add_training(out: Records, rec: dict, path: Path, models_size: str, finetune_mode: Mapping) -> None:
    if rec.get("models_size", DEFAULT_RECORD_SIZE) != models_size:
        return
    same_finetune = dict(rec.get("finetune", DEFAULT_RECORD_FINETUNE)) == dict(finetune_mode)
    device = str(rec["device"])
    for i, row in enumerate(rec["results"]):
        system = row.get("system")
        if not system or row.get("s_per_step") is None:
            continue
        if not system.startswith("pretrain") and system != "baseline" and not same_finetune:
            continue  # a finetuning measured in another mode
        try:
            batch = int(row.get("batch", rec.get("batch")))
        except (TypeError, ValueError):
            raise PlanError(
                f"{path}: results[{i}] ({system}): key batch (or the record's): expected the clips per "
                "measured step, an integer"
            ) from None
        try:
            s_per_clip = float(row["s_per_step"]) / batch
            params = int(row["params_trainable"]) if row.get("params_trainable") is not None else None
        except (TypeError, ValueError):
            raise PlanError(
                f"{path}: results[{i}] ({system}): s_per_step and params_trainable must be numbers"
            ) from None
        out.train.setdefault(device, {})[system] = {
            "s_per_clip": s_per_clip,
            "params_trainable": params,
            "batch": batch,
            "threads": rec.get("threads"),
            "on": rec.get("device_name") or rec.get("gpu"),
            "source": path.name,
        }


def _add_features(out: Records, rec: dict, path: Path) -> None:
    rows = [r for r in rec["throughput"] if isinstance(r, dict)]
    if isinstance(rec.get("cpu_baseline"), dict):
        rows.append(rec["cpu_baseline"])
    gpu = (rec.get("environment") or {}).get("gpu")
    for row in rows:
        if not row.get("device") or row.get("clips_per_s") is None or row.get("complete") is False:
            continue
        device = str(row["device"])
        best = out.features.get(device)
        if best is None or float(row["clips_per_s"]) > best["clips_per_s"]:
            out.features[device] = {
                "clips_per_s": float(row["clips_per_s"]),
                "threads": row.get("threads"),
                "on": gpu if device == "cuda" else None,
                "source": path.name,
            }


# -------------------------------------------------------------------- the plan
def system_of(rule: str, job: Mapping[str, str]) -> str:
    """The record's system name of one training job."""
    if rule == "pretrain_tokenizer":
        return f"pretrain-{job['src']}"
    if rule == "train_baseline":
        return "baseline"
    return f"{job['src']}-{job['txt']}-{job['head']}"


def training_jobs(config: Mapping) -> list[dict]:
    """Every training job: {"rule", "system", "kind", "after": system it waits for or None}."""
    grid = resolve_grid(config.get("grid"))
    jobs = []
    finetuned = [(s, t, h) for s in grid["sources"] for t in grid["texts"] for h in grid["heads"]]
    if finetuned:
        for src in grid["sources"]:
            jobs.append({"rule": "pretrain_tokenizer", "system": f"pretrain-{src}", "kind": "pretrain", "after": None})
    for _seed in config["seeds"]:
        if grid["baseline"]:
            jobs.append({"rule": "train_baseline", "system": "baseline", "kind": "baseline", "after": None})
        for s, t, h in finetuned:
            jobs.append({"rule": "finetune", "system": f"{s}-{t}-{h}", "kind": "finetune", "after": f"pretrain-{s}"})
    return jobs


def list_schedule(durations: list[float], after: list[int | None], slots: int) -> float:
    """Wall time of jobs on `slots` devices, one job per device, a job starting once the job
    it waits for (index in `after`) has finished. Greedy: each time the device free first
    takes the job that can start first, of those the one heading the longest chain (its
    duration plus its longest waiting job's)."""
    tail = [0.0] * len(durations)
    for i, dep in enumerate(after):
        if dep is not None:
            tail[dep] = max(tail[dep], durations[i])
    finish: dict[int, float] = {}
    free = [0.0] * max(slots, 1)
    pending = set(range(len(durations)))
    while pending:
        ready = [i for i in pending if after[i] is None or after[i] in finish]
        earliest = min(free)

        def start(i: int, earliest: float = earliest) -> float:
            dep = after[i]
            return max(earliest, finish[dep]) if dep is not None else earliest

        i = min(ready, key=lambda j: (start(j), -(durations[j] + tail[j]), j))
        free.remove(earliest)
        finish[i] = start(i) + durations[i]
        free.append(finish[i])
        pending.discard(i)
    return max(finish.values(), default=0.0)


def feature_bytes_per_clip() -> int:
    """Bytes of one clip in a features file: float32 feature maps and ADPIT targets."""
    from textseld.features.extract import FEATURE_CONFIG

    channels = sum(len(v) for v in FEATURE_CONFIG["channels"].values())
    maps = channels * N_FEAT_FRAMES * N_MELS
    targets = N_LABEL_FRAMES * N_ADPIT_SLOTS * 4 * N_CLASSES  # (x, y, z, distance) per class and slot
    return 4 * (maps + targets)


def plan(
    config: Mapping,
    records: Records,
    *,
    gpus: int,
    train_clips: int | None,
    test_clips: int | None,
) -> dict:
    """The plan of `config` (schema defaults filled): jobs, device-hours per rule and device,
    wall time of the training jobs on `gpus` devices per device type, disk. Figures without a
    measurement are None, listed in "missing"."""
    train_cfgs = _train_configs(config)
    fraction = float((config["train"].get("validation_split") or {}).get("fraction", 0.1))
    fit_clips = None if train_clips is None else round(train_clips * (1 - fraction))
    jobs = planned_jobs(config)
    tjobs = training_jobs(config)
    hours: dict[str, dict[str, float | None]] = {}  # rule -> device -> device-hours
    missing: dict[str, dict[str, list[str]]] = {d: {} for d in DEVICES}  # device -> rule -> systems
    for device in DEVICES:
        # training
        figures = records.train.get(device, {})
        per_job: list[float | None] = []
        for job in tjobs:
            fig = figures.get(job["system"])
            if fig is None or fit_clips is None:
                per_job.append(None)
                continue
            per_job.append(fig["s_per_clip"] * fit_clips * train_cfgs[job["kind"]].epochs / 3600)
        for rule in ("pretrain_tokenizer", "train_baseline", "finetune"):
            vals = [h for h, job in zip(per_job, tjobs) if job["rule"] == rule]
            if not vals:
                continue
            absent = sorted({job["system"] for h, job in zip(per_job, tjobs) if job["rule"] == rule and h is None})
            hours.setdefault(rule, {})[device] = None if absent else sum(v for v in vals if v is not None)
            if absent:
                missing[device][rule] = absent
        # features
        feat = records.features.get(device)
        total_clips = None if train_clips is None or test_clips is None else train_clips + test_clips
        hours.setdefault("extract_features", {})[device] = (
            total_clips / feat["clips_per_s"] / 3600 if feat and total_clips is not None else None
        )
        if hours["extract_features"][device] is None:
            missing[device]["extract_features"] = []
        for rule in ("encode_tokens", "encode_sentences", "predict", "embed_test_sentences", "alignment"):
            if rule in jobs:
                hours.setdefault(rule, {})[device] = None
                missing[device][rule] = []
    # wall time of the training jobs on `gpus` devices of each type (one job per device)
    wall: dict[str, float | None] = {}
    gpu_per_job = max(int(config["resources"]["train"].get("gpu", 0)), 1)
    slots = max(gpus // gpu_per_job, 1)
    index = {job["system"]: i for i, job in enumerate(tjobs) if job["rule"] == "pretrain_tokenizer"}
    for device in DEVICES:
        figures = records.train.get(device, {})
        if fit_clips is None or any(job["system"] not in figures for job in tjobs):
            wall[device] = None
            continue
        durations = [figures[j["system"]]["s_per_clip"] * fit_clips * train_cfgs[j["kind"]].epochs for j in tjobs]
        wall[device] = (
            list_schedule(durations, [index.get(j["after"]) if j["after"] else None for j in tjobs], slots) / 3600
        )
    # disk: features of both splits (shards + packed), checkpoints of every training run
    per_clip = feature_bytes_per_clip()
    features_gb = None if total_clips is None else 2 * total_clips * per_clip / 1e9
    params: dict[str, int] = {}
    for device in DEVICES:
        for system, fig in records.train.get(device, {}).items():
            if fig["params_trainable"] is not None:
                params.setdefault(system, fig["params_trainable"])
    ckpt_missing = sorted({j["system"] for j in tjobs if j["system"] not in params})
    checkpoints_gb = (
        None
        if ckpt_missing
        else sum(params[j["system"]] * (BYTES_BEST_PER_PARAM + BYTES_LAST_PER_PARAM) for j in tjobs) / 1e9
    )
    return {
        "jobs": jobs,
        "hours": hours,
        "missing": missing,
        "gpus": gpus,
        "slots": slots,
        "wall_hours": wall,
        "train_clips": train_clips,
        "test_clips": test_clips,
        "fit_clips": fit_clips,
        "validation_fraction": fraction,
        "epochs": {k: train_cfgs[k].epochs for k in TRAIN_KINDS},
        "train_device": train_cfgs["finetune"].device,
        "features_device": config["features"].get("extract", {}).get("device", "cpu"),
        "disk_gb": {"features": features_gb, "checkpoints": checkpoints_gb},
        "disk_missing": ckpt_missing,
        "feature_bytes_per_clip": per_clip,
        "records": records,
        "models_size": str((config.get("models") or {}).get("size", "small")),
    }


def dataset_clips(config: Mapping, root: str | Path = "resources/datasets") -> tuple[int | None, int | None, str]:
    """(training clips, test clips, where the counts come from) of the config's data: the
    synthesis sizes, else the WAV files of a downloaded dataset, else (None, None, why)."""
    data = config["data"]
    if data["source"] == "synthetic":
        syn = data["synthesis"]
        return int(syn["train_clips"]), int(syn["test_clips"]), "data.synthesis"
    audio = Path(root) / data["source"] / "stereo_dev"
    if audio.is_dir():
        count = [sum(1 for _ in (audio / s).glob("*.wav")) for s in ("train_splits", "test_splits") for s in data[s]]
        n_train = sum(count[: len(data["train_splits"])])
        return n_train, sum(count) - n_train, f"WAV files under {audio}"
    return None, None, f"{audio} not downloaded: pass --train-clips and --test-clips"


# ---------------------------------------------------------------------- output
def _h(value: float | None) -> str:
    if value is None:
        return "missing"
    return f"{value:.2f}" if value < 10 else f"{value:,.1f}"


def _missing(rules: Mapping[str, list[str]]) -> str:
    return ", ".join(
        f"{rule} ({len(systems)} system{'s' if len(systems) > 1 else ''} unrecorded)" if systems else rule
        for rule, systems in rules.items()
    )


def format_plan(p: Mapping, *, header: str = "") -> str:
    """The plan as text: jobs and device-hours per rule, totals, wall time, disk, assumptions."""
    lines = [header] if header else []

    def count(key: str) -> str:
        return "missing" if p[key] is None else str(p[key])

    lines.append(
        f"training clips {count('train_clips')} ({count('fit_clips')} after the validation "
        f"fraction {p['validation_fraction']:g}), test clips {count('test_clips')}; "
        f"epochs: " + ", ".join(f"{k} {v}" for k, v in p["epochs"].items())
    )
    lines.append("")
    lines.append(f"{'rule':<20} {'jobs':>5} {'cpu hours':>12} {'cuda hours':>12}")
    for rule, n in p["jobs"].items():
        h = p["hours"].get(rule)
        cells = [_h(h.get(d)) if h else "-" for d in DEVICES]
        lines.append(f"{rule:<20} {n:>5} {cells[0]:>12} {cells[1]:>12}")
    lines.append(f"{'total':<20} {sum(p['jobs'].values()):>5}   (-: short CPU jobs, not timed)")
    lines.append("")
    rec = p["records"]
    for device in DEVICES:
        timed = [h[device] for h in p["hours"].values() if h.get(device) is not None]
        gone = p["missing"][device]
        total = _h(sum(timed)) + (f" + missing: {_missing(gone)}" if gone else "")
        lines.append(f"{device}-hours: {total if timed else 'missing: ' + _missing(gone)}")
    lines.append(
        f"wall time of the training jobs on {p['gpus']} devices ({p['slots']} jobs at once; "
        f"pretrainings before their finetunings, longest chain first): "
        + "; ".join(f"{d} {_h(p['wall_hours'][d])}" + (" h" if p["wall_hours"][d] is not None else "") for d in DEVICES)
    )
    gb = p["disk_gb"]
    lines.append(
        f"disk: features {_h(gb['features'])} GB ({p['feature_bytes_per_clip'] / 1e3:.0f} kB per clip, "
        f"shards + packed), checkpoints {_h(gb['checkpoints'])} GB (best.pt + last.pt of every training run"
        + (f"; no parameter count of {', '.join(p['disk_missing'])}" if p["disk_missing"] else "")
        + ")"
    )
    lines.append(f"this config trains on {p['train_device']}, extracts features on {p['features_device']}")
    lines.append("")
    lines.append("measured figures:")
    for device in DEVICES:
        figs = rec.train.get(device, {})
        if figs:
            srcs = sorted({f["source"] for f in figs.values()})
            some = next(iter(figs.values()))
            batches = "/".join(str(b) for b in sorted({f["batch"] for f in figs.values()}))
            where = "".join(f" on {on}" for on in sorted({f["on"] for f in figs.values() if f.get("on")}))
            lines.append(
                f"  training on {device}: {len(figs)} systems{where}, s per clip at batch {batches}"
                f"{', ' + str(some['threads']) + ' threads' if some.get('threads') else ''} ({', '.join(srcs)})"
            )
        else:
            lines.append(f"  training on {device}: missing (no record of models size {p['models_size']})")
        feat = rec.features.get(device)
        if feat:
            where = f" on {feat['on']}" if feat.get("on") else ""
            thr = f", {feat['threads']} threads" if feat.get("threads") else ""
            lines.append(f"  features on {device}: {feat['clips_per_s']:.1f} clips/s{where}{thr} ({feat['source']})")
        else:
            lines.append(f"  features on {device}: missing (no record)")
    lines.append(
        "  training hours = s per clip x clips x epochs (validation passes left out); checkpoints "
        f"{BYTES_BEST_PER_PARAM} + {BYTES_LAST_PER_PARAM} bytes per trainable parameter"
    )
    return "\n".join(lines)
