# Test-split predictions of every run, scoring under both protocols, the results table.


# The test split's reference CSVs in one folder (the test data may span several
# split folders; the strict protocol must see exactly the test clips).
rule collect_references:
    input:
        dataset=dataset_marker(),
        fingerprint=data_fingerprint("test"),
    output:
        refs=directory(f"{RESULTS}/references/test"),
    log:
        f"{LOGS}/collect_references.log",
    params:
        folders=[f"{DATA_ROOT}/metadata_dev/{s}" for s in SPLITS["test"]],
    threads: 1
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/collect_references.py"


# The output is a manifest beside the CSV folder, not the folder itself: a directory()
# output gets a .snakemake_timestamp file, on which the official DCASE evaluation
# crashes. The folder holds only the CSVs (replaced as a whole by every run).
rule predict:
    input:
        model=f"{run_dir('{model}', '{seed}')}/best.pt",
        test=packed("test"),
        stats=STATS,
        encoded=lambda wildcards: encoded_test_file(wildcards.model),
    output:
        manifest=predictions_manifest("{model}", "{seed}"),
    log:
        f"{LOGS}/predict/{{model}}-seed{{seed}}.log",
    benchmark:
        f"{BENCH}/predict/{{model}}-seed{{seed}}.tsv"
    params:
        run_dir=lambda wildcards: run_dir(wildcards.model, wildcards.seed),
        predictions=lambda wildcards: predictions_dir(wildcards.model, wildcards.seed),
    threads: threads_of("predict")
    resources:
        **gpu_resources("predict"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/predict.py"


rule evaluate:
    input:
        manifest=predictions_manifest("{model}", "{seed}"),
        refs=f"{RESULTS}/references/test",
    output:
        metrics=f"{RESULTS}/metrics/{{model}}/seed{{seed}}/{{protocol}}.json",
    log:
        f"{LOGS}/evaluate/{{model}}-seed{{seed}}-{{protocol}}.log",
    params:
        evaluate=config["evaluate"],
        predictions=lambda wildcards: predictions_dir(wildcards.model, wildcards.seed),
    threads: 1
    resources:
        mem_mb=mem_of("features"),
        runtime=runtime_of("predict"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule aggregate:
    input:
        **aggregate_inputs(),
    output:
        csv=report(results_table()["csv"], caption="../report/comparison.rst", category="Results"),
        md=results_table()["md"],
        runs=results_table()["runs"],
        figure=report(results_table()["figure"], caption="../report/figure.rst", category="Results"),
    log:
        f"{LOGS}/aggregate.log",
    params:
        runs=aggregate_runs(),
        evaluate=config["evaluate"],  # n_boot, ci_seed: the paired differences to the Baseline
        # rows of different data or recipes in one table only when asked
        allow_mixed=config["aggregate"]["allow_mixed"],
    threads: 1
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/aggregate.py"


# Per-epoch training loss and validation F20/1 of every run, for the report.
rule training_curves:
    input:
        metrics=curve_inputs(),
    output:
        figure=report(results_table()["curves"], caption="../report/curves.rst", category="Training"),
    log:
        f"{LOGS}/training_curves.log",
    params:
        runs=curve_runs(),
    threads: 1
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/training_curves.py"
