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
        alignment=report(results_table()["alignment"], caption="../report/alignment.rst", category="Alignment"),
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


# The frozen text encoder's A of every distinct ground-truth sentence of the test split, each
# clip's fixed template: the same for every run of a text encoder (it is frozen), so once per
# text encoder.
rule embed_test_sentences:
    input:
        texts=texts_file("test"),
        weights=lambda wildcards: fetched([wildcards.txt]),
    output:
        sentences=sentence_embeddings_file("{txt}"),
    log:
        f"{LOGS}/embed_test_sentences/{{txt}}.log",
    benchmark:
        f"{BENCH}/embed_test_sentences/{{txt}}.tsv"
    params:
        text_encoder=lambda wildcards: text_encoder_section(wildcards.txt),
    threads: threads_of("predict")
    resources:
        **gpu_resources("predict"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/embed_test_sentences.py"


# Alignment diagnostics of one text run (docs/METHOD.md section 8): A from audio (the cached test
# outputs of a fixed tokenizer, else recomputed from best.pt) against A of the frame's sentence.
rule alignment:
    input:
        model=f"{run_dir('{model}', '{seed}')}/best.pt",
        test=packed("test"),
        stats=STATS,
        texts=texts_file("test"),
        sentences=lambda wildcards: sentence_embeddings_file(wildcards.model.split("-")[1]),
        encoded=lambda wildcards: encoded_test_file(wildcards.model),
    output:
        alignment=alignment_file("{model}", "{seed}"),
    log:
        f"{LOGS}/alignment/{{model}}-seed{{seed}}.log",
    benchmark:
        f"{BENCH}/alignment/{{model}}-seed{{seed}}.tsv"
    params:
        run_dir=lambda wildcards: run_dir(wildcards.model, wildcards.seed),
    threads: threads_of("predict")
    resources:
        **gpu_resources("predict"),
    wildcard_constraints:
        model=_one_of(sorted({m for m, _ in aligned_runs()})),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/alignment.py"


# Reference against prediction over time for a few test clips (the first TIMELINE_CLIPS by name
# that hold an event), for the systems of TIMELINE_MODELS, their first seed.
rule timelines:
    input:
        manifest=lambda wildcards: predictions_manifest(wildcards.model, SEEDS[0]),
        refs=f"{RESULTS}/references/test",
    output:
        figure=report(
            f"{RESULTS}/timelines/{{model}}.png",
            caption="../report/timelines.rst",
            category="Timelines",
            labels={"system": "{model}"},
        ),
    log:
        f"{LOGS}/timelines/{{model}}.log",
    params:
        predictions=lambda wildcards: predictions_dir(wildcards.model, SEEDS[0]),
        n_clips=TIMELINE_CLIPS,
        title=lambda wildcards: timeline_title(wildcards.model),
    threads: 1
    wildcard_constraints:
        model=_one_of(TIMELINE_MODELS),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/timelines.py"
