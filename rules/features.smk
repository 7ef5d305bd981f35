# Features: scatter over shards per split, gather into one packed file per split.


rule extract_features:
    input:
        dataset=dataset_marker(),
        fingerprint=data_fingerprint("{split}"),
    output:
        shard=f"{RESULTS}/features/shards/{{split}}/{{shard}}.h5",
    log:
        f"{LOGS}/extract_features/{{split}}-{{shard}}.log",
    benchmark:
        f"{BENCH}/extract_features/{{split}}-{{shard}}.tsv"
    params:
        root=lambda wildcards, input: os.path.dirname(input.dataset),
        splits=lambda wildcards: SPLITS[wildcards.split],
        n_shards=N_SHARDS,
        extract=config["features"]["extract"],
    threads: threads_of("features")
    resources:
        **gpu_resources("features"),  # features.extract.device: cuda wants resources.features.gpu: 1 on Slurm
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/extract_features.py"


rule pack_features:
    input:
        shards=feature_shards,
    output:
        packed=f"{RESULTS}/features/{{split}}.h5",
    log:
        f"{LOGS}/pack_features/{{split}}.log",
    benchmark:
        f"{BENCH}/pack_features/{{split}}.tsv"
    threads: 1
    resources:
        mem_mb=grown("features", "mem_mb"),
        runtime=grown("features", "runtime"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/pack_features.py"


# Normalisation statistics from the training part only, without the validation
# recordings of the shared split (applied at load time).
rule feature_stats:
    input:
        packed=packed("train"),
    output:
        stats=STATS,
    log:
        f"{LOGS}/feature_stats.log",
    benchmark:
        f"{BENCH}/feature_stats.tsv"
    params:
        split=config["train"]["validation_split"],
    threads: 1
    resources:
        mem_mb=grown("features", "mem_mb"),
        runtime=grown("features", "runtime"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/feature_stats.py"
