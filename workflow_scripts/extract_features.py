"""Rule extract_features: features of one shard of one split's clips."""
import logging

from textseld.features.extract import extract_shard

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
extract_shard(
    root=snakemake.params.root,
    splits=snakemake.params.splits,
    shard=int(snakemake.wildcards.shard),
    n_shards=snakemake.params.n_shards,
    out=snakemake.output.shard,
    cfg=snakemake.params.extract,
)
