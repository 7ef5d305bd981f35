#!/usr/bin/env bash
# The whole workflow as one Slurm job that submits the others, for sites that forbid
# long-running processes on login nodes. From the checkout, with the environment that
# has textseld and snakemake active (sbatch passes the submitting shell's environment on):
#
#   sbatch profiles/slurm/workflow_job.sh --configfile config/paper.yaml
#   sbatch -p long -A my_project --time=7-00:00:00 profiles/slurm/workflow_job.sh --configfile config/paper.yaml
#
# The arguments go to `snakemake --profile slurm` unchanged (targets before --configfile,
# which takes every word after it). This job only waits on the others: one CPU and a little
# memory, for as long as the whole workflow takes (sbatch's --time, --partition and
# --account on the command line override the lines below; the partition must allow that
# long). Compute nodes must be allowed to submit jobs (sbatch) and to query their state
# (sacct), as on most sites. Snakemake's own log is the job's output file,
# textseld-workflow-JOBID.log in the checkout; the jobs it submits are listed by
# `squeue --me` and keep their logs under .snakemake/slurm_logs/.
# Cancelling this job (scancel) leaves the jobs Snakemake submitted running: cancel them
# too (squeue --me). A job killed this way leaves Snakemake's lock on the working
# directory: run `snakemake --unlock` once, then resubmit; the workflow continues where it
# stopped (incomplete outputs are rerun, training runs resume from last.pt).
#SBATCH --job-name=textseld-workflow
#SBATCH --cpus-per-task=1
#SBATCH --mem=2000
#SBATCH --time=7-00:00:00
#SBATCH --output=textseld-workflow-%j.log
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
if ! command -v snakemake >/dev/null; then
    echo "workflow_job.sh: snakemake is not on PATH: activate the environment before sbatch" >&2
    exit 1
fi
exec snakemake --profile slurm "$@"
