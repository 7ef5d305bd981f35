"""Rule download_pretrained: fetch one named set of pretrained weights (local rule, network)."""
import logging

from textseld.models.pretrained import fetch_weights

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
fetch_weights(out_dir=snakemake.params.out, **snakemake.params.fetch)
