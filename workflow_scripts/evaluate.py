"""Rule evaluate: score one run's test predictions under one protocol, with 95 % intervals.

Runs `textseld evaluate` in-process (the same code path as the command line),
which writes the scores JSON (NaN as null).
"""

from textseld.logsetup import log_to_file

log_to_file(snakemake.log[0])  # records, prints, progress bars and errors go to the rule's log

from textseld.cli import main

cfg = snakemake.params.evaluate
rc = main(
    [
        "--verbose",
        "evaluate",
        "--ref",
        snakemake.input.refs,
        "--pred",
        snakemake.params.predictions,
        "--protocol",
        snakemake.wildcards.protocol,
        "--average",
        cfg["average"],
        "--ci",
        "--n-boot",
        str(cfg["n_boot"]),
        "--seed",
        str(cfg["ci_seed"]),
        "--json",
        snakemake.output.metrics,
        "--clip-stats",  # the table's paired comparison with the Baseline resamples them
    ]
)
if rc != 0:
    raise SystemExit(f"textseld evaluate failed with exit status {rc}; see {snakemake.log[0]}")
