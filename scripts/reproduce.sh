#!/usr/bin/env bash
# Rebuild the shipped models from scratch (hours on 2 CPU cores). Needs the real-footage pool
# (third-party footage, not in this repository): REAL=path/to/real-videos bash scripts/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${REAL:?set REAL to the real-footage folder (with manifest.csv)}
export OMP_NUM_THREADS=1
# 1. the sync model, on the pool's in-sync talking clips, speakers split (talkface/checkpoints/sync)
python -m train.sync --real "$REAL" --out runs/sync_v1 --steps 700 --seed 0 --cv 4
rm -rf talkface/checkpoints/sync && cp -rL runs/sync_v1 talkface/checkpoints/sync
cp runs/sync_v1-results.json docs/sync-results.json
# 2. the benchmarks: the puppet, and real footage with generator-like artifacts (picture and
# motion factors; lip-sync and generator-like factors; lip-sync factors again), merged, each
# source rated by its own sharpness (real-labels-3)
python -m talkface synth --n 600 --size 256 --seed 0 --out data/synth --workers 2
python -m talkface synth --from-real "$REAL" --out data/real_vt --workers 2 --segments 2 --seed 0 \
    --factors blur_sigma,crf,noise_sigma,lowres_mouth,colour_mismatch,freeze_fraction,shake_px,flicker_amp,region_jitter
python -m talkface synth --from-real "$REAL" --out data/real_gen --workers 2 --segments 1 --seed 1 \
    --factors offset_frames,other_speaker,mouth_time,frozen_lower,mouth_blur,face_smoothing,texture_flicker,frame_repeat,stiff_head,no_blinks,over_smooth
python -m talkface synth --from-real "$REAL" --out data/real_lip2 --workers 2 --segments 2 --seed 2 \
    --factors offset_frames,other_speaker,mouth_time,frozen_lower
python -c 'from talkface.synth.real import merge_manifests as m; m(["data/real_vt", "data/real_gen", "data/real_lip2"], "data/real3")'
python -m talkface synth --rate-sources data/real3
python -c 'from talkface.synth.real import merge_manifests as m; m(["data/synth", "data/real3"], "data/mixed3")'
# 3. the quality model, and the checkpoint users get (talkface/checkpoints/default)
python -m train.ensemble --config real --data data/mixed3 --members 3 --output_dir runs/ens3
python -m train.ship --run runs/ens3 --data data/mixed3 --out talkface/checkpoints/default \
    --reference "$REAL/generated" --notes docs/card_notes.md \
    --command "python -m train.ensemble --config real --data data/mixed3 --members 3 --output_dir runs/ens3"
# 3b. the signal stage (same weights): the real-recording reference of every measured signal and
# the penalties, fitted on the training speakers of the real-footage benchmark, and the generated-look
# model (`train.realism`) with its overall penalty; the score percentiles refitted through it
# (`python -m train.signals`; see the card's last section)
python -m train.signals --real "$REAL" --table artifacts/signals_pool.csv --data data/real3 --realism \
    --reference-data data/mixed3 --reference "$REAL/generated" \
    --checkpoint talkface/checkpoints/default --out talkface/checkpoints/default
# 3c. original vs improved, 3 seeds each on the same split (the ensemble's members are the
# improved seeds)
for i in 0 1 2; do mkdir -p runs/compare3/improved && ln -sfn "$PWD/runs/ens3/member_$i" runs/compare3/improved/seed$i; done
python -m train.compare --data data/mixed3 --seeds 3 --original original --improved real \
    --output_dir runs/compare3
# 4. the comparison and the benchmarks reported in docs/results.md
python benchmarks/families.py --data data/real3 --manifest-split
python benchmarks/generators.py --real "$REAL"
python benchmarks/sync.py --real "$REAL"
python benchmarks/faces.py --real "$REAL"
python benchmarks/score.py --video "$REAL/real/MimicTalk__data__raw__examples__Trump_10s.mp4" --long
