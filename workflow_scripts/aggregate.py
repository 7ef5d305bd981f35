"""Rule aggregate: join the runs' metrics and weights files into the results table."""
import logging

from textseld.results import aggregate, run_records

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
aggregate(
    runs=run_records(snakemake.params.runs),
    comparison_csv=snakemake.output.csv,
    comparison_md=snakemake.output.md,
    runs_csv=snakemake.output.runs,
    figure=snakemake.output.figure,
)
