"""Rule aggregate: join the runs' metrics, weights and provenance files into the results table."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.results import aggregate, run_records

aggregate(
    runs=run_records(snakemake.params.runs),
    comparison_csv=snakemake.output.csv,
    comparison_md=snakemake.output.md,
    runs_csv=snakemake.output.runs,
    figure=snakemake.output.figure,
    alignment_figure=snakemake.output.alignment,
    n_boot=snakemake.params.evaluate["n_boot"],
    seed=snakemake.params.evaluate["ci_seed"],
    allow_mixed=snakemake.params.allow_mixed,
)
