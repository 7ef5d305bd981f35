"""Rule evaluate: score one run's test predictions under one protocol, with 95 % intervals.

Runs `textseld evaluate` in-process (the same code path as the command line),
which writes the scores JSON (NaN as null).
"""
import contextlib

from textseld.cli import main

cfg = snakemake.params.evaluate
with open(snakemake.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    rc = main([
        "--verbose", "evaluate",
        "--ref", snakemake.input.refs,
        "--pred", snakemake.input.predictions,
        "--protocol", snakemake.wildcards.protocol,
        "--average", cfg["average"],
        "--ci", "--n-boot", str(cfg["n_boot"]), "--seed", str(cfg["ci_seed"]),
        "--json", snakemake.output.metrics,
    ])
if rc != 0:
    raise SystemExit(f"textseld evaluate failed with exit status {rc}; see {snakemake.log[0]}")
