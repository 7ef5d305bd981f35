"""Rule pack_features: gather one split's shards into the packed HDF5 (sorted by clip name)."""
import logging

from textseld.data.hdf5 import merge_shards

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
merge_shards(shards=list(snakemake.input.shards), out=snakemake.output.packed)
