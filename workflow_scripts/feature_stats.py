"""Rule feature_stats: per-channel, per-band mean/std of the training split."""
from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.data.hdf5 import compute_stats

compute_stats(packed=snakemake.input.packed, out=snakemake.output.stats)
