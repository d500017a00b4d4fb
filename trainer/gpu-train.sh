#!/usr/bin/env bash
# Trains the default model on one CUDA GPU within a fixed wall-clock budget, then leaves the weights (f32, or
# EXPORT_DTYPE) in $OUT as 15 MB parts (join with `cat model.safetensors.part-* > model.safetensors`).
#
#   OUT=/some/dir BIN=target/release/tessera bash trainer/gpu-train.sh
#
# Needs: python3 with torch, numpy and safetensors; the `tessera` release binary (it writes the shards).
# Steps: a smoke run of every phase on a tiny preset (fails fast), the shard, the real run, the parts, then
# (time allowing) the sign probe (probe.json) and the held-out loss by category (val_loss.jsonl).
# A watchdog stops training at DEADLINE seconds so the latest exported weights always come back.
set -uo pipefail
OUT=${OUT:-out}
BIN=${BIN:-target/release/tessera}
EXAMPLES=${EXAMPLES:-250000}
VQ_SECONDS=${VQ_SECONDS:-120}
GPT_SECONDS=${GPT_SECONDS:-270}
DEADLINE=${DEADLINE:-560}
SEED=${SEED:-1}
# Training mix of the shard, e.g. MIX=sign=30,edit=35 (see `tessera data --help`); empty: the default mix.
MIX=${MIX:-}
# Edit prompt layout of the shard: image-first (the shipped model's) or text-first (see engine/src/generation/prompt.rs).
EDIT_LAYOUT=${EDIT_LAYOUT:-image-first}
# Non-empty: new pictures with a sign are prompted with the sign drawn alone (`tessera data --sign-glyphs`).
SIGN_GLYPHS=${SIGN_GLYPHS:-}
# Loss weight of the tokens under a sign's lettering (train.py --text-weight); 1: every token alike.
TEXT_WEIGHT=${TEXT_WEIGHT:-1}
# The exported model's id until `ship.py --model-id` names the shipped one (val_loss.jsonl tells the two apart).
MODEL_ID=${MODEL_ID:-tessera-shapes-gpu-seed$SEED}
# f16 halves the parts that come back (train.py --export-dtype); the trainer warm-starts from either.
EXPORT_DTYPE=${EXPORT_DTYPE:-f32}
# Empty: skip the sign probe and the held-out loss (they run as well on the CPU machine afterwards).
CHECKS=${CHECKS-1}
# Warm start: INIT=model-folder VQ_STEPS=0 continues the transformer on the shipped VQ's codes.
EXTRA=()
[ -n "${INIT:-}" ] && EXTRA+=(--init "$INIT")
[ -n "${VQ_STEPS:-}" ] && EXTRA+=(--vq-steps "$VQ_STEPS")
WORK=${WORK:-/tmp/tessera-gpu}
start=$(date +%s)
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
here=$(cd "$(dirname "$0")" && pwd)

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, numpy, safetensors; print('torch', torch.__version__, 'numpy', numpy.__version__)"

if [ -z "${SKIP_SMOKE:-}" ]; then
echo "== smoke"
"$BIN" data --format shard --seed 99 --n 300 --out "$WORK/smoke-shard" || exit 1
python3 "$here/train.py" --shard "$WORK/smoke-shard" --run "$WORK/smoke-run" --preset tiny \
    --vq-steps 5 --gpt-steps 5 --vq-batch 8 --gpt-batch 8 --export "$WORK/smoke-model" > "$WORK/smoke.log" 2>&1 \
    || { tail -30 "$WORK/smoke.log"; exit 1; }
echo "smoke ok at $(( $(date +%s) - start )) s"
fi

echo "== shard"
"$BIN" data --format shard --seed "$SEED" --n "$EXAMPLES" ${MIX:+--mix "$MIX"} --edit-layout "$EDIT_LAYOUT" ${SIGN_GLYPHS:+--sign-glyphs} --out "$WORK/shard" || exit 1
echo "shard ok at $(( $(date +%s) - start )) s: $(du -sh "$WORK/shard" | cut -f1)"

echo "== train"
python3 "$here/train.py" --shard "$WORK/shard" --run "$WORK/run" --vq-seconds "$VQ_SECONDS" \
    --gpt-seconds "$GPT_SECONDS" --vq-batch 64 --gpt-batch 64 --vq-lr 6e-4 --ckpt-every 1000 \
    --text-weight "$TEXT_WEIGHT" --export-dtype "$EXPORT_DTYPE" \
    "${EXTRA[@]}" --export "$WORK/model" --model-id "$MODEL_ID" > "$OUT/train.log" 2>&1 &
trainer=$!
while kill -0 "$trainer" 2>/dev/null; do
    if (( $(date +%s) - start > DEADLINE )); then
        echo "deadline reached: stopping the trainer"
        kill "$trainer"
        break
    fi
    sleep 2
done
wait "$trainer"; echo "trainer exit $? at $(( $(date +%s) - start )) s"
tail -5 "$OUT/train.log"

if [ -f "$WORK/model/model.safetensors" ]; then
    cp "$WORK/model/config.json" "$OUT/"
    split -b 15M -d "$WORK/model/model.safetensors" "$OUT/model.safetensors.part-"
    ls -la "$OUT"
fi

# Seconds left before the machine's per-command limit (LIMIT seconds from the start).
time_left() { echo $(( ${LIMIT:-590} - ($(date +%s) - start) )); }

# How much the new weights read a sign's word off the prompt (trainer/probe_signs.py), if time is left.
left=$(time_left)
if [ -n "$CHECKS" ] && [ -f "$WORK/model/model.safetensors" ] && (( left > 30 )); then
    echo "== probe"
    "$BIN" data --format shard --seed 4242 --n 300 --mix single=0,multi=0,grid=0,edit=0 \
        --out "$WORK/probe-shard" > /dev/null \
        && timeout "$left" python3 "$here/probe_signs.py" "$WORK/model" "$WORK/probe-shard" --threads 8 \
        | tee "$OUT/probe.json"
fi

# Held-out loss by category (trainer/val_loss.py) of the new weights and of those they started from (INIT),
# each on the same held-out scenes written in its own edit layout, if time is left.
left=$(time_left)
if [ -n "$CHECKS" ] && [ -f "$WORK/model/model.safetensors" ] && (( left > 30 )); then
    echo "== held-out loss"
    for model in "$WORK/model" ${INIT:+"$INIT"}; do
        layout=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("edit_layout", "image-first"))' \
            "$model/config.json")
        [ -d "$WORK/held-out-$layout" ] || "$BIN" data --format shard --seed 4343 --n 600 --edit-layout "$layout" \
            --out "$WORK/held-out-$layout" > /dev/null
        left=$(time_left)
        (( left > 10 )) && timeout "$left" python3 "$here/val_loss.py" "$model" "$WORK/held-out-$layout" --threads 8 \
            | tee -a "$OUT/val_loss.jsonl"
    done
fi
