"""Rule training_curves: loss and validation F20/1 per epoch of every run (one figure)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.curves import plot_training_curves

plot_training_curves(runs=snakemake.params.runs, out=snakemake.output.figure)
