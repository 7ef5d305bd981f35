"""Rule encode_tokens: the fixed pretrained tokenizer's tokens of one split."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.train.encode import encode_tokens

encode_tokens(
    pretrained_dir=snakemake.params.pretrained_dir,
    features_h5=snakemake.input.features,
    stats_h5=snakemake.input.stats,
    out=snakemake.output.tokens,
    threads=snakemake.threads,
    device=snakemake.params.device,
)
