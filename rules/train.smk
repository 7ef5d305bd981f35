# Tokenizer pretraining (one per source encoder), the baseline, the finetunings.
# Run directories are resumable: last.pt is deliberately not an output, so that
# a killed job continues from it when rerun.


rule pretrain_tokenizer:
    input:
        train=packed("train"),
        stats=STATS,
        weights=lambda wildcards: fetched(["beats"] if wildcards.src == "beats" else []),
    output:
        model=f"{pretrain_dir('{src}')}/best.pt",
        metrics=f"{pretrain_dir('{src}')}/val_metrics.json",
        weights=f"{pretrain_dir('{src}')}/weights.json",
        provenance=f"{pretrain_dir('{src}')}/provenance.json",
    log:
        f"{LOGS}/pretrain_tokenizer/{{src}}.log",
    benchmark:
        f"{BENCH}/pretrain_tokenizer/{{src}}.tsv"
    params:
        run_dir=lambda wildcards: pretrain_dir(wildcards.src),
        models=MODEL_CONFIG,
        train=config["train"]["pretrain"],
        seed=config["train"]["pretrain_seed"],
        split=config["train"]["validation_split"],
    threads: threads_of("train")
    resources:
        **gpu_resources("train"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/pretrain_tokenizer.py"


rule train_baseline:
    input:
        train=packed("train"),
        stats=STATS,
    output:
        model=f"{run_dir('baseline', '{seed}')}/best.pt",
        metrics=f"{run_dir('baseline', '{seed}')}/val_metrics.json",
        weights=f"{run_dir('baseline', '{seed}')}/weights.json",
        provenance=f"{run_dir('baseline', '{seed}')}/provenance.json",
    log:
        f"{LOGS}/train_baseline/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train_baseline/seed{{seed}}.tsv"
    params:
        run_dir=lambda wildcards: run_dir("baseline", wildcards.seed),
        models=MODEL_CONFIG,
        train=config["train"]["baseline"],
        split=config["train"]["validation_split"],
    threads: threads_of("train")
    resources:
        **gpu_resources("train"),
    # the longest jobs first: a baseline left for last runs alone while the other cores idle
    priority: 1
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/train_baseline.py"


# With a fixed tokenizer (train.finetune.freeze_tokenizer), its tokens of the training
# clips are the same in every finetuning of that source: computed once here. They are also all
# that the identity control computes before its head (its validation and training "outputs", and
# with the test split's tokens its test "outputs").
rule encode_tokens:
    input:
        features=packed("{split}"),
        stats=STATS,
        pretrained=f"{pretrain_dir('{src}')}/best.pt",
    output:
        tokens=tokens_file("{src}", "{split}"),
    log:
        f"{LOGS}/encode_tokens/{{src}}-{{split}}.log",
    benchmark:
        f"{BENCH}/encode_tokens/{{src}}-{{split}}.tsv"
    params:
        pretrained_dir=lambda wildcards: pretrain_dir(wildcards.src),
        device=config["train"]["finetune"].get("device", "cpu"),
    threads: threads_of("train")
    resources:
        **gpu_resources("train"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/encode_tokens.py"


# ... and what the frozen text encoder makes of them under each clip's fixed template is the
# same too: all that validation and test prediction compute before the head. One job per part
# ({part}: validation, train, test), so that an edit of the test split reruns only the test
# clips' outputs and the predictions that read them, never a finetuning.
rule encode_sentences:
    input:
        # the validation and training clips are both in the training split's file
        features=lambda wildcards: packed("test" if wildcards.part == "test" else "train"),
        stats=STATS,
        pretrained=f"{pretrain_dir('{src}')}/best.pt",
        weights=lambda wildcards: fetched([wildcards.txt]),
    output:
        encoded=encoded_file("{src}", "{txt}", "{part}"),
    log:
        f"{LOGS}/encode_sentences/{{src}}-{{txt}}-{{part}}.log",
    benchmark:
        f"{BENCH}/encode_sentences/{{src}}-{{txt}}-{{part}}.tsv"
    params:
        pretrained_dir=lambda wildcards: pretrain_dir(wildcards.src),
        text_encoder=lambda wildcards: text_encoder_section(wildcards.txt),
        # the validation split picks the clips of the other two parts only
        split=lambda wildcards: None if wildcards.part == "test" else config["train"]["validation_split"],
        templates=TEMPLATES_SHA256,
        device=config["train"]["finetune"].get("device", "cpu"),
    threads: threads_of("train")
    resources:
        **gpu_resources("train"),
    wildcard_constraints:
        # training clips' outputs only for finetunings that keep their templates fixed
        part="validation|train|test" if ENCODED_TRAINING else "validation|test",
        # no job for the identity control: its outputs are the tokens (encode_tokens)
        txt=_one_of(ENCODERS),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/encode_sentences.py"


rule finetune:
    input:
        train=packed("train"),
        stats=STATS,
        # the training sentences of the alignment term (none for the identity control)
        texts=lambda wildcards: [] if wildcards.txt == IDENTITY else [texts_file("train")],
        pretrained=f"{pretrain_dir('{src}')}/best.pt",
        tokens=finetune_tokens,
        encoded=lambda wildcards: finetune_encoded(wildcards, "validation"),
        encoded_train=lambda wildcards: finetune_encoded(wildcards, "train"),
        weights=lambda wildcards: fetched([wildcards.txt] + (["beats"] if wildcards.src == "beats" else [])),
    output:
        model=f"{run_dir('{src}-{txt}-{head}', '{seed}')}/best.pt",
        metrics=f"{run_dir('{src}-{txt}-{head}', '{seed}')}/val_metrics.json",
        weights=f"{run_dir('{src}-{txt}-{head}', '{seed}')}/weights.json",
        provenance=f"{run_dir('{src}-{txt}-{head}', '{seed}')}/provenance.json",
    log:
        f"{LOGS}/finetune/{{src}}-{{txt}}-{{head}}-seed{{seed}}.log",
    benchmark:
        f"{BENCH}/finetune/{{src}}-{{txt}}-{{head}}-seed{{seed}}.tsv"
    params:
        run_dir=lambda wildcards: run_dir(f"{wildcards.src}-{wildcards.txt}-{wildcards.head}", wildcards.seed),
        pretrained_dir=lambda wildcards: pretrain_dir(wildcards.src),
        models=MODEL_CONFIG,
        # only the chosen encoder's keys: changing CLIP settings leaves BERT runs alone
        text_encoder=lambda wildcards: text_encoder_section(wildcards.txt),
        train=lambda wildcards: finetune_section(wildcards.head),
        split=config["train"]["validation_split"],
    threads: threads_of("train")
    resources:
        **gpu_resources("train"),
    conda:
        "../envs/textseld.yaml"
    script:
        "../workflow_scripts/finetune.py"
