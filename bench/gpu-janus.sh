#!/usr/bin/env bash
# Native wgpu decode speed of the janus-pro-1b-sized architecture (random weights, f16 folder) on one GPU,
# with the GPU memory it held at its peak; results in $OUT/janus-gpu.json and $OUT/janus-gpu-memory.csv.
#
#   OUT=/some/dir BIN=target/release/tessera SECONDS_LEFT=150 bash bench/gpu-janus.sh
#
# Needs: the `tessera` release binary built with `--features gpu`, a Vulkan loader and driver, nvidia-smi.
# One warm-up and one timed generation (576 image tokens, CFG batch 2) first; three timed ones when the first
# left time for them.
set -uo pipefail
OUT=${OUT:-out}
BIN=${BIN:-target/release/tessera}
SECONDS_LEFT=${SECONDS_LEFT:-150}
DIR=${DIR:-/tmp/janus-sized}
start=$(date +%s)
mkdir -p "$OUT"
# "<|User|>: a photo of a red apple\n\n<|Assistant|>:<begin_of_image>" in the DeepSeek tokenizer.
IDS=100000,100588,25,245,5946,279,245,40660,10076,185,185,100589,25,100003
left() { echo $(( SECONDS_LEFT - ($(date +%s) - start) )); }

[ -f "$DIR/config.json" ] || "$BIN" init --preset janus-pro-1b-sized --dtype f16 --out "$DIR" || exit 1
echo "folder ready at $(( $(date +%s) - start )) s: $(du -sh "$DIR" | cut -f1)"

nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 250 > "$OUT/janus-gpu-memory.csv" &
monitor=$!
for runs in 1 3; do
    t=$(left)
    (( t > 20 )) || break
    began=$(date +%s)
    timeout "$t" "$BIN" bench --model "$DIR" --device gpu --runs "$runs" --prompt-ids "$IDS" --json \
        | tee -a "$OUT/janus-gpu.json" || break
    took=$(( $(date +%s) - began ))
    # Three more timed generations take about twice what one warm-up and one took.
    (( took * 2 < $(left) )) || break
done
kill "$monitor"
echo "peak GPU memory used: $(cut -d, -f2 "$OUT/janus-gpu-memory.csv" | sort -n | tail -1)"
