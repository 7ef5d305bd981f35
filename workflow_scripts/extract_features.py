"""Rule extract_features: features of one shard of one split's clips."""
import logging

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from textseld.features.pipeline import extract_shard  # noqa: E402  (after logging: import errors land in the log)

extract_shard(
    root=snakemake.params.root,
    splits=snakemake.params.splits,
    out=snakemake.output.shard,
    shard=(int(snakemake.wildcards.shard), snakemake.params.n_shards),
    device=snakemake.params.extract["device"],
    batch_size=snakemake.params.extract["batch_size"],
    wpe=snakemake.params.extract["wpe"],
)
