# Ground-truth sentences of the training split (validation is carved out of it) and of the
# test split (prediction needs none: it uses a fixed template per clip; the alignment
# diagnostics compare A from audio with the A of these sentences).


rule make_texts:
    input:
        packed=packed("{split}"),
    output:
        texts=f"{RESULTS}/texts/{{split}}.h5",
    log:
        f"{LOGS}/make_texts/{{split}}.log",
    params:
        texts=config["texts"],
        # the built-in templates' fingerprint: editing a template reruns this rule
        templates=TEMPLATES_SHA256,
    threads: 1
    resources:
        mem_mb=mem_of("features"),
        runtime=runtime_of("features"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/make_texts.py"
