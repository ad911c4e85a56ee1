#!/bin/bash
# Generate a dataset with a Slurm job array, then finalize it in a job that runs after.
#
#   SUITE=datasets/physion.toml DATA=/shared/data/physion SHARDS=8 bash docs/cluster/slurm-generate.sh
#
# submits an array of SHARDS workers (each generates its part of the suite's Parquet shards,
# `physworld generate --shards N` reading its index from $SLURM_ARRAY_TASK_ID) and a job
# that runs `physworld finalize` once all succeeded. DATA must be on storage every node
# sees. A failed or preempted worker can be resubmitted alone (`sbatch --array=3
# --export=ALL slurm-generate.sh worker`: `--resume` keeps its finished shards and
# regenerates the same bytes); then run `bash slurm-generate.sh after` (a failed worker
# keeps the after job from running).
#SBATCH --job-name=physworld-generate
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=04:00:00
set -euo pipefail
: "${SUITE:?the suite file}" "${DATA:?the dataset folder}" "${SHARDS:=8}"

case "${1:-submit}" in
submit)
    job=$(sbatch --parsable --array=0-$((SHARDS - 1)) --export=ALL "$0" worker)
    sbatch --parsable --dependency=afterok:"$job" --job-name=physworld-finalize --export=ALL "$0" after
    ;;
worker)
    physworld generate --suite "$SUITE" --out "$DATA" --shards "$SHARDS" --threads "${SLURM_CPUS_PER_TASK:-1}" --resume
    ;;
after)
    physworld finalize --data "$DATA"
    ;;
*)
    echo "usage: $0 [submit|worker|after]" >&2
    exit 2
    ;;
esac
