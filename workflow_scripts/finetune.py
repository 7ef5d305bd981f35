"""Rule finetune: one {source}-{text}-{head} system from the pretrained tokenizer."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.train.runs import finetune

finetune(
    run_dir=snakemake.params.run_dir,
    train_h5=snakemake.input.train,
    stats_h5=snakemake.input.stats,
    texts=next(iter(snakemake.input.texts), None),  # none for the identity control
    pretrained_dir=snakemake.params.pretrained_dir,
    source=snakemake.wildcards.src,
    text=snakemake.wildcards.txt,
    head=snakemake.wildcards.head,
    model_cfg=snakemake.params.models,
    text_cfg=snakemake.params.text_encoder,
    train_cfg={**snakemake.params.train, "torch_threads": snakemake.threads},
    seed=int(snakemake.wildcards.seed),
    split=snakemake.params.split,  # one validation split for every run
    on_config_change="restart",  # Snakemake decided the run is stale
    setup=snakemake.config,  # what the run is produced with: its provenance.json
    tokens=next(iter(snakemake.input.tokens), None),  # the fixed tokenizer's tokens (encode_tokens), if any
    encoded=next(iter(snakemake.input.encoded), None),  # its validation clips' encodings (encode_sentences)
    encoded_train=next(iter(snakemake.input.encoded_train), None),  # and its training clips', if any
)
