"""Rule feature_stats: per-channel, per-band mean/std of the training split."""
import logging

from textseld.data.hdf5 import compute_stats

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
compute_stats(packed=snakemake.input.packed, out=snakemake.output.stats)
