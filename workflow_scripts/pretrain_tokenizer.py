"""Rule pretrain_tokenizer: the tokenizer of one source encoder, ADPIT only."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.train.runs import pretrain

pretrain(
    run_dir=snakemake.params.run_dir,
    train_h5=snakemake.input.train,
    stats_h5=snakemake.input.stats,
    source=snakemake.wildcards.src,
    model_cfg=snakemake.params.models,
    train_cfg={**snakemake.params.train, "torch_threads": snakemake.threads},
    seed=snakemake.params.seed,
    split=snakemake.params.split,  # one validation split for every run
    on_config_change="restart",  # Snakemake decided the run is stale
    setup=snakemake.config,  # what the run is produced with: its provenance.json
)
