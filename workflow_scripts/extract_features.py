"""Rule extract_features: features of one shard of one split's clips."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.features.pipeline import extract_shard

extract_shard(
    root=snakemake.params.root,
    splits=snakemake.params.splits,
    out=snakemake.output.shard,
    shard=(int(snakemake.wildcards.shard), snakemake.params.n_shards),
    **snakemake.params.extract,  # device, batch_size, wpe: omitted ones keep the library's (docs/METHOD.md section 2)
    threads=snakemake.threads,
)
