"""Rule evaluate: score one run's test predictions under one protocol, with 95 % intervals
and each clip's statistics (the table's paired comparison with the Baseline resamples them)."""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.metrics.evaluate import evaluate, format_report

cfg = snakemake.params.evaluate
result = evaluate(
    refs=snakemake.input.refs,
    predictions=snakemake.params.predictions,
    out=snakemake.output.metrics,
    protocol=snakemake.wildcards.protocol,
    average=cfg["average"],
    n_boot=cfg["n_boot"],
    seed=cfg["ci_seed"],
)
print(format_report(result))
