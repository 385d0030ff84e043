#!/usr/bin/env bash
# NAS-Bench-Graph results (docs/results.md, section "NAS-Bench-Graph"): for each dataset, training size and seed,
# the NAR ranker of config/graph.yml, LightGBM(rank) and MLP on the same split (nar-cli train /
# test: the same harness, nar.data.make_split with the seed), then the strict-protocol search of
# the NAR checkpoint (nar-cli sample) and random search with the same number of queries.
#
#   OUT=runs/graph DATASETS="cora pubmed arxiv" SIZES="262 1310" SEEDS="0 1 2" experiments/graph_results.sh
#   python experiments/graph_summary.py runs/graph > graph_table.md
#
# Stores: `nar-cli build --bench graph --source nasbenchgraph --dataset D` then `nar-cli encode`
# (done here when missing; $NAR_CACHE_DIR or ./cache). Finished steps are skipped on a re-run.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/graph}
DATASETS=${DATASETS:-"cora pubmed arxiv"}
SIZES=${SIZES:-"262 1310"}    # 1% and 5% of the 26,206 architectures
SEEDS=${SEEDS:-"0 1 2"}
CFG=${CFG:-config/graph.yml}
NAR=${NAR:-nar-cli}
mkdir -p "$OUT/data"
for ds in $DATASETS; do
  json="$OUT/data/nbg_$ds.json"
  [ -f "$json" ] || $NAR build --no-progress --bench graph --source nasbenchgraph --dataset "$ds" --out "$json"
  store=$($NAR encode --bench graph --data_path "$json" 2>/dev/null | tail -1)
  for n in $SIZES; do
    for seed in $SEEDS; do
      run="$OUT/$ds-n$n-s$seed"
      if [ ! -f "$run/nar/search.json" ]; then
        start=$(date +%s)
        $NAR train --config_file "$CFG" --data_path "$store" --save_dir "$run/nar" --seed "$seed" --set train_size="$n"
        echo "$(( $(date +%s) - start ))" > "$run/nar/train_seconds"
        $NAR test --config_file "$CFG" --data_path "$store" --save_dir "$run/nar" --seed "$seed" --set train_size="$n"
        $NAR sample --config_file "$CFG" --data_path "$store" --save_dir "$run/nar" --checkpoint ckp_best.pth \
          --seed "$seed" --set train_size="$n"
      fi
      queries=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['strict_protocol']['queries'])" \
        "$run/nar/search.json")
      [ -f "$run/random/search.json" ] || $NAR sample --data_path "$store" --save_dir "$run/random" --mode random \
        --budget "$queries" --seed "$seed"
      for model in "lightgbm --set baseline_target=rank" "mlp"; do
        name=${model%% *}
        [ -f "$run/$name/results.json" ] && continue
        # shellcheck disable=SC2086
        $NAR train --config_file "$CFG" --data_path "$store" --save_dir "$run/$name" --seed "$seed" \
          --set train_size="$n" --set arch=$model
        # shellcheck disable=SC2086
        $NAR test --config_file "$CFG" --data_path "$store" --save_dir "$run/$name" --seed "$seed" \
          --set train_size="$n" --set arch=$model
      done
    done
  done
done
