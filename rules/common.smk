# Config validation, the run grid, paths and input helpers. No rules here.
import os
import re

from snakemake.utils import validate

# The config as typed: a key given twice in a config file is refused (file and line), and
# `--config KEY=VALUE` values are read as YAML, as in a config file (textseld.config_sources).
from textseld.config_sources import apply_overrides, check_config_files, typed_overrides

check_config_files(workflow.configfiles)
apply_overrides(config, typed_overrides(workflow.config_settings.config_args, workflow.config_settings.config))

from textseld.recipes import apply_recipe

# The chosen recipe (config key `recipe`: textseld.recipes owns the models, text encoders and
# training of each) with the config files' and --config keys merged over it, in place.
_RESOLVED = apply_recipe(config)
config.clear()
config.update(_RESOLVED)

# Validate once, filling the schema's defaults: every later lookup may index directly.
validate(config, "../config/schema.yaml", set_default=True)


def _canonical(value):
    """Nested mappings with sorted keys. Snakemake compares rule params by their
    rendering, so the key order of a config file must not make a rule stale."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


for _key in list(config):
    config[_key] = _canonical(config[_key])


# Then the library checks the merged setup with the config classes the jobs use (a
# bad value fails here, naming its key) and derives the token width from the chosen
# text encoders: rules hand MODEL_CONFIG (models + token_width) to the jobs.
from textseld.constants import PROTOCOLS  # scoring protocols: every run is evaluated under each
from textseld.constants import IDENTITY  # the control "text encoder": its outputs are its tokens
from textseld.models.text_config import embeds_sentences  # the text encoders that embed sentences
from textseld.setups import encoder_section, resolve_setup
from textseld.train.config import section_for_head

SETUP = resolve_setup(config)
MODEL_CONFIG = _canonical(SETUP["models"])
# finetunings keep the pretrained tokenizer fixed: its tokens are computed once per source
FIXED_TOKENIZER = SETUP["fixed_tokenizer"]
# ... and, with fixed training templates too, train their heads on the text encoder's outputs of
# the training clips, computed once per source and text encoder (encode_sentences)
ENCODED_TRAINING = SETUP["encoded_training"]


# ----------------------------------------------------------------------- paths
RESULTS = "results"
LOGS = "logs"
BENCH = f"{RESULTS}/benchmarks"
DATASETS = "resources/datasets"
DATA_ROOT = f"{DATASETS}/{config['data']['source']}"
WEIGHTS_DIR = "resources/weights"
# the logical splits and the dataset folders they are made of
SPLITS = {
    "train": config["data"]["train_splits"],
    "test": config["data"]["test_splits"],
}


# -------------------------------------------------- the run grid (one place only)
GRID = SETUP["grid"]  # config's grid with the library's defaults, checked
SOURCES = GRID["sources"]
TEXTS = GRID["texts"]
HEADS = GRID["heads"]
# the text encoders whose outputs encode_sentences computes (the identity control embeds no
# sentence: its outputs are its tokens)
ENCODERS = [t for t in TEXTS if embeds_sentences(t)]
SEEDS = config["seeds"]
FINETUNED = [f"{s}-{t}-{h}" for s in SOURCES for t in TEXTS for h in HEADS]
MODELS = (["baseline"] if GRID["baseline"] else []) + FINETUNED
N_SHARDS = config["features"]["shards"]
SHARDS = [f"{i:03d}" for i in range(N_SHARDS)]
# weights that download_pretrained fetches (empty: offline run)
FETCH = config["weights"]["fetch"]


def _one_of(values):
    """Regex matching exactly the configured values: a typo'd target cannot match."""
    return "|".join(re.escape(str(v)) for v in values) or "(?!)"


wildcard_constraints:
    split="train|test",
    shard=_one_of(SHARDS),
    src=_one_of(SOURCES),
    txt=_one_of(TEXTS),
    head=_one_of(HEADS),
    seed=_one_of(SEEDS),
    model=_one_of(MODELS),
    weight=_one_of(FETCH),
    protocol=_one_of(PROTOCOLS),


# --------------------------------------------------------------- per-rule config
def grown(section, key):
    """resources.<section>.<key> times the attempt (1x, 2x, 3x, ...): a job that Slurm killed
    at its time limit (TIMEOUT) or for memory comes back with more when the profile's
    `retries` resubmit it (a training job then resumes from its last.pt)."""
    base = config["resources"][section][key]
    return lambda wildcards, attempt: base * attempt


def gpu_resources(section):
    """Portable resources of a GPU-capable rule: mem_mb and runtime growing with the
    attempt and, only when the config asks for GPUs, `gpu` (CPU sites must not send a
    GPU request to Slurm)."""
    res = {k: grown(section, k) for k in ("mem_mb", "runtime")}
    if config["resources"][section].get("gpu", 0):
        res["gpu"] = config["resources"][section]["gpu"]
    return res


def threads_of(section):
    return config["resources"][section]["threads"]


def mem_of(section):
    return config["resources"][section]["mem_mb"]


def runtime_of(section):
    return config["resources"][section]["runtime"]


def text_encoder_section(txt):
    """The text_encoders keys of one encoder: its preset name and its `clip_*` / `bert_*` keys."""
    return encoder_section(config["text_encoders"], txt)


def finetune_section(head):
    """train.finetune for one head (lr_new from lr_new_by_head): a change of one head's rate
    leaves the other head's finetunings alone."""
    return section_for_head(config["train"]["finetune"], head)


# Fingerprint of the built-in sentence templates (part of make_texts' params).
from textseld.text.store import templates_fingerprint

TEMPLATES_SHA256 = templates_fingerprint()


# ------------------------------------------------------------------ input helpers
def dataset_marker():
    """The file that stands for a complete dataset: written last by the synthesis
    (its summary) or by the download (its manifest, after verification and extraction)."""
    name = "synth_summary.json" if config["data"]["source"] == "synthetic" else "manifest.json"
    return f"{DATA_ROOT}/{name}"


def data_fingerprint(split):
    """The content fingerprint of a split's audio and label files (rule fingerprint_split)."""
    return f"{RESULTS}/dataset/{split}.json"


def feature_shards(wildcards):
    return expand(f"{RESULTS}/features/shards/{wildcards.split}/{{shard}}.h5", shard=SHARDS)


def packed(split):
    return f"{RESULTS}/features/{split}.h5"


STATS = f"{RESULTS}/features/stats.h5"


def texts_file(split):
    return f"{RESULTS}/texts/{split}.h5"


def tokens_file(src, split="train"):
    """The fixed pretrained tokenizer's tokens of a split (encode_tokens): the training split's,
    and the test split's for the identity controls' predictions."""
    return f"{RESULTS}/tokens/{src}/{split}.h5"


def encoded_file(src, txt, part):
    """The text encoder's fixed-template outputs of the validation, test or training clips (encode_sentences)."""
    return f"{RESULTS}/encoded/{src}-{txt}/{part}.h5"


def encoded_test_file(model):
    """[the test clips' encoded file] of a finetuned system with a fixed tokenizer, else []; for an
    identity control the test clips' tokens, all there is before its head."""
    if not FIXED_TOKENIZER or model not in FINETUNED:
        return []
    src, txt, _ = model.split("-")
    return [tokens_file(src, "test")] if txt == IDENTITY else [encoded_file(src, txt, "test")]


def finetune_tokens(wildcards):
    """[the fixed tokenizer's tokens of the training split] where a finetuning reads them: with
    random training templates, and for the identity control (its outputs are its tokens), else []."""
    if not FIXED_TOKENIZER:
        return []
    return [tokens_file(wildcards.src)] if wildcards.txt == IDENTITY or not ENCODED_TRAINING else []


def finetune_encoded(wildcards, part):
    """[the text encoder's outputs of the validation or training clips] that a finetuning reads
    (none for the identity control, which reads its tokens)."""
    wanted = FIXED_TOKENIZER if part == "validation" else ENCODED_TRAINING
    return [encoded_file(wildcards.src, wildcards.txt, part)] if wanted and wildcards.txt != IDENTITY else []


def weight_marker(name):
    """Manifest written by `textseld download-pretrained` for one named weight set."""
    return f"{WEIGHTS_DIR}/{name}/manifest.json"


def fetch_arguments(name):
    """fetch_weights(...) keyword arguments that fetch only `name` (None skips an item)."""
    from textseld.models.text_config import preset_fetch

    w = config["weights"]
    if name == "beats" and not w["beats_source"]:
        raise ValueError(
            "weights.fetch lists 'beats' but weights.beats_source is not set: give the URL or "
            "local path of BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
        )
    args = {"clip_arch": None, "bert": None, "beats": w["beats_source"] if name == "beats" else None}
    if name in ("clip", "bert"):
        # what to fetch is the chosen preset's (one owner: text_encoders.<name>)
        preset = config["text_encoders"].get(name)
        fetch = preset_fetch(name, preset) if preset else None
        if fetch is None:
            raise ValueError(
                f"weights.fetch lists {name!r} but text_encoders.{name} = {preset!r} has no pretrained "
                f"weights to fetch: remove {name!r} from weights.fetch or choose a pretrained preset"
            )
        args.update(fetch)
    return args


def fetched(names):
    """Manifests of the fetched weights among `names` (none in an offline config)."""
    return [weight_marker(n) for n in names if n in FETCH]


def run_dir(model, seed):
    return f"{RESULTS}/runs/{model}/seed{seed}"


def pretrain_dir(src):
    return f"{RESULTS}/runs/pretrain-{src}"


def metrics_file(model, seed, protocol):
    return f"{RESULTS}/metrics/{model}/seed{seed}/{protocol}.json"


def predictions_dir(model, seed):
    """One run's test predictions: only the DCASE CSVs, one per clip."""
    return f"{RESULTS}/predictions/{model}/seed{seed}"


def predictions_manifest(model, seed):
    """The predict rule's output: the list of CSVs it wrote into predictions_dir."""
    return f"{predictions_dir(model, seed)}.json"


def aggregate_inputs():
    """Every run's metrics (both protocols), weights.json and provenance.json, in grid order."""
    return {
        "metrics": [metrics_file(m, s, p) for m, s in all_runs() for p in PROTOCOLS],
        "weights": [f"{run_dir(m, s)}/weights.json" for m, s in all_runs()],
        "provenance": [f"{run_dir(m, s)}/provenance.json" for m, s in all_runs()],
        "alignment": [alignment_file(m, s) for m, s in aligned_runs()],
    }


def aggregate_runs():
    """The run list handed to textseld.results.aggregate: one dict per (model, seed)."""
    from textseld.results import system_name

    return [
        {
            "system": system_name(model),
            "seed": int(seed),
            "metrics": {p: metrics_file(model, seed, p) for p in PROTOCOLS},
            "weights": f"{run_dir(model, seed)}/weights.json",
            "provenance": f"{run_dir(model, seed)}/provenance.json",
            "alignment": alignment_file(model, seed) if (model, seed) in aligned_runs() else None,
        }
        for model, seed in all_runs()
    ]


def alignment_file(model, seed):
    """One text run's alignment diagnostics on the test split (rule alignment)."""
    return f"{RESULTS}/alignment/{model}/seed{seed}.json"


def sentence_embeddings_file(txt):
    """The text encoder's A of every distinct ground-truth sentence of the test split."""
    return f"{RESULTS}/alignment/sentences-{txt}.h5"


def aligned_runs():
    """(model id, seed) of every run whose text encoder embeds sentences (textseld.models.text_config
    .embeds_sentences): the runs with alignment diagnostics; not the Baseline, nor a text choice
    without a text encoder."""
    from textseld.models.text_config import embeds_sentences

    return [(m, s) for m, s in all_runs() if m in FINETUNED and embeds_sentences(m.split("-")[1])]


# The systems whose test clips are drawn over time in the report (rule timelines), chosen from the
# grid without looking at any score: the Baseline and the grid's first text system of each head.
TIMELINE_MODELS = (["baseline"] if GRID["baseline"] else []) + [
    next(m for m in FINETUNED if m.endswith(f"-{h}")) for h in HEADS if FINETUNED
]
TIMELINE_CLIPS = 3  # the first clips by name that hold an event (textseld.timelines.choose_clips)


def timeline_title(model):
    from textseld.results import system_name

    return f"{system_name(model)} seed {SEEDS[0]}"


def timeline_figures():
    """The timelines' figures: one per system of TIMELINE_MODELS, its first seed."""
    return [f"{RESULTS}/timelines/{m}.png" for m in TIMELINE_MODELS]


def all_runs():
    """(model id, seed) of every evaluated run: the baseline and the 8 finetunings, per seed."""
    return [(m, s) for m in MODELS for s in SEEDS]


def results_table():
    return {
        "csv": f"{RESULTS}/comparison.csv",
        "md": f"{RESULTS}/comparison.md",
        "runs": f"{RESULTS}/runs.csv",
        "figure": f"{RESULTS}/comparison.png",
        "curves": f"{RESULTS}/training_curves.png",
        "alignment": f"{RESULTS}/alignment.png",
    }


def curve_runs():
    """Legend label -> run directory of every training run (pretrainings first)."""
    from textseld.results import system_name

    runs = {f"pretrain {src}": pretrain_dir(src) for src in SOURCES if FINETUNED}
    runs.update({f"{system_name(m)} seed {s}": run_dir(m, s) for m, s in all_runs()})
    return runs


def curve_inputs():
    """The runs' validation metrics files: present once a run is complete."""
    return [f"{d}/val_metrics.json" for d in curve_runs().values()]
