# The dataset (synthesised or downloaded) and the pretrained weights. Both dataset
# rules exist; config["data"]["source"] decides which one's output is asked for.


rule synthesize_dataset:
    output:
        marker=f"{DATASETS}/synthetic/synth_summary.json",
    log:
        f"{LOGS}/synthesize_dataset.log",
    benchmark:
        f"{BENCH}/synthesize_dataset.tsv"
    params:
        root=lambda wildcards, output: os.path.dirname(output.marker),
        synthesis=config["data"]["synthesis"],
    threads: threads_of("synthesize")
    resources:
        mem_mb=mem_of("synthesize"),
        runtime=runtime_of("synthesize"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/synthesize_dataset.py"


# Data edits: each split's content fingerprint is an input of its feature extraction (and the
# test split's of the references). This rule writes it once the dataset exists; at every later
# start it is brought up to date here, rewritten only when a file's content changed, so an edited
# label or a replaced recording reruns that split and what depends on it (textseld.data.fingerprint).
rule fingerprint_split:
    input:
        dataset=dataset_marker(),
    output:
        fingerprint=data_fingerprint("{split}"),
    log:
        f"{LOGS}/fingerprint_split/{{split}}.log",
    params:
        root=lambda wildcards, input: os.path.dirname(input.dataset),
        folders=lambda wildcards: SPLITS[wildcards.split],
    threads: 1
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/fingerprint_split.py"


if workflow.is_main_process and os.path.exists(dataset_marker()):
    from textseld.data.fingerprint import refresh_fingerprint

    for _split, _folders in SPLITS.items():
        refresh_fingerprint(data_fingerprint(_split), DATA_ROOT, _folders)


# Network access: a local rule writing under resources/ (compute nodes may be offline).
rule download_dataset:
    output:
        marker=f"{DATASETS}/dcase2025/manifest.json",
    log:
        f"{LOGS}/download_dataset.log",
    params:
        root=lambda wildcards, output: os.path.dirname(output.marker),
        download=config["data"]["download"],
    threads: 1
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/download_dataset.py"


rule download_pretrained:
    output:
        manifest=weight_marker("{weight}"),
    log:
        f"{LOGS}/download_pretrained/{{weight}}.log",
    params:
        out=lambda wildcards, output: os.path.dirname(output.manifest),
        # arguments of textseld.models.pretrained.fetch_weights: only this weight set
        fetch=lambda wildcards: fetch_arguments(wildcards.weight),
    threads: 1
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/download_pretrained.py"
