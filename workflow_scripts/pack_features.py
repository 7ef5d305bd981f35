"""Rule pack_features: gather one split's shards into the packed HDF5 (sorted by clip name)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.data.hdf5 import merge_shards

merge_shards(shards=list(snakemake.input.shards), out=snakemake.output.packed)
