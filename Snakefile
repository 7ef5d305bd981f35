# textseld: stereo SELD with frozen pre-trained text encoders (DCASE2025 Task 3).
# Wiring only: helpers live in rules/common.smk, rules in the stage files.
#   snakemake --cores all                         embedded default (synthetic data, CPU)
#   snakemake --configfile config/paper.yaml ...  the paper's setup on DCASE2025
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/text.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"


# Network access happens only in local rules (compute nodes often have no internet);
# aggregation is too small to be worth a cluster job.
localrules:
    all,
    download_dataset,
    download_pretrained,
    fingerprint_split,
    aggregate,
    training_curves,
    timelines,


rule all:
    default_target: True
    input:
        **results_table(),
        timelines=timeline_figures(),
