#!/bin/bash
# Score models on a dataset with a Slurm job array, then merge the shards into result files.
#
#   DATA=/shared/data/physion OUT=/shared/results/physion MODELS="oracle raw-state jepa:/shared/runs/a" \
#     SHARDS=8 bash docs/cluster/slurm-bench.sh
#
# submits an array of SHARDS workers (each answers its slice of every task's items,
# `physworld bench --shards N` reading its index from $SLURM_ARRAY_TASK_ID) and a job that
# runs `physworld results merge` once all succeeded: the same result files as one
# unsharded run. MODELS is a space-separated list of model specs (a `process:` command
# with spaces needs its own `--model` line here). LLM answers are cached
# per request in PHYSWORLD_LLM_CACHE (here on the shared storage), so a retried worker asks
# nothing twice; resubmit one alone with `sbatch --array=3 --export=ALL slurm-bench.sh
# worker`, then run `bash slurm-bench.sh after` (a failed worker keeps the after job from
# running).
#SBATCH --job-name=physworld-bench
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
set -euo pipefail
: "${DATA:?the dataset folder}" "${OUT:?the result folder}" "${MODELS:?model specs, space-separated}" "${SHARDS:=8}"
export PHYSWORLD_LLM_CACHE="${PHYSWORLD_LLM_CACHE:-$OUT/llm-cache}"

case "${1:-submit}" in
submit)
    job=$(sbatch --parsable --array=0-$((SHARDS - 1)) --export=ALL "$0" worker)
    sbatch --parsable --dependency=afterok:"$job" --job-name=physworld-merge --export=ALL "$0" after
    ;;
worker)
    models=()
    for m in $MODELS; do models+=(--model "$m"); done
    physworld bench --data "$DATA" --out "$OUT" "${models[@]}" --shards "$SHARDS" --json
    ;;
after)
    physworld results merge --data "$DATA" --out "$OUT"
    ;;
*)
    echo "usage: $0 [submit|worker|after]" >&2
    exit 2
    ;;
esac
