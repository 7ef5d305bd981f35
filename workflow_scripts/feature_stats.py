"""Rule feature_stats: per-channel, per-band mean/std of the training part (validation excluded)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.data.splits import compute_training_stats

compute_training_stats(packed=snakemake.input.packed, out=snakemake.output.stats, split=snakemake.params.split)
