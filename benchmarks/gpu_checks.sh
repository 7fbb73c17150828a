#!/usr/bin/env bash
# One prepared GPU session: kernel tests compiled for CUDA (no interpreter) and AMP training steps, then the op
# benchmarks, a training step of the nuScenes camera detector (LSS, 6 x 256 x 704, batch 4: peak memory, Triton
# vs twin bev_pool), the LiDAR -> camera distiller's losses and step, and the online-teacher distillation step
# (teacher + back-projection share; goal < 15 %) on the GPU. Every part has its own time limit (a part that
# runs over is interrupted with SIGINT, so its log ends with a traceback of where it was); logs and JSON go to
# $OUT (default gpu_out/).
# Needs torch with CUDA, triton, mmengine, a sparse-conv backend (spconv or spconv-triton), pc_kd importable
# (pip install -e . or PYTHONPATH=.).
#   bash benchmarks/gpu_checks.sh                       # every part, about 8 minutes on one H200
#   bash benchmarks/gpu_checks.sh tests backproject     # some parts: tests backproject bev_pool voxel_scatter
#                                                       # lss_step distill_losses distill_step online_fusion
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${OUT:-gpu_out}")
mkdir -p "$out"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
parts=${*:-tests backproject bev_pool voxel_scatter lss_step distill_losses distill_step online_fusion}
wanted() { [[ " $parts " == *" $1 "* ]]; }
step() {  # step SECONDS LOG COMMAND...: run with a limit, append its output to LOG, note its exit status
    local limit=$1 log=$2; shift 2
    echo "== $(date +%T) $*" | tee -a "$out/$log"
    timeout -s INT -k 10 "$limit" "$@" 2>&1 | tee -a "$out/$log"
    echo "== exit ${PIPESTATUS[0]} after $SECONDS s: $*" | tee -a "$out/$log" >> "$out/steps.log"
}
{ nvidia-smi -L; $PY -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'triton', triton.__version__, torch.cuda.get_device_name())"; } > "$out/env.log" 2>&1
wanted tests && step 180 tests.log $PY -m pytest -q -p no:cacheprovider --maxfail=20 -rfs \
    tests/test_backproject.py tests/test_bev_pool.py tests/test_scatter.py tests/test_mixed_precision.py
cd benchmarks
wanted backproject && step 60 bench.log $PY bench_backproject.py --device cuda --repeats 3 \
    --json "$out/backproject.json"
wanted bev_pool && step 45 bench.log $PY bench_bev_pool.py --device cuda --repeats 10 --json "$out/bev_pool.json"
wanted voxel_scatter && step 30 bench.log $PY bench_voxel_scatter.py --device cuda --repeats 10 \
    --json "$out/voxel_scatter.json"
wanted lss_step && step 90 bench.log $PY bench_lss_step.py --device cuda --batch 4 --repeats 3 \
    --json "$out/lss_step.json"
wanted distill_losses && step 60 bench.log $PY bench_bev_distill.py --device cuda --boxes 200 --batch 4 \
    --repeats 5 --profile "$out/bev_distill_top_ops.txt" --json "$out/bev_distill.json"
wanted distill_step && step 200 bench.log $PY bench_bev_distill.py --device cuda --boxes 200 --batch 4 \
    --repeats 5 --step --json "$out/bev_distill_step.json"
# online (teacher in the step) vs offline (fused files) distillation step; the offline config's files first
OFFLINE=configs/openscene_distill/openscene_spconv-unet_tinysegnet_synthetic-indoor.py
wanted online_fusion && step 240 bench.log bash -c "cd .. && $PY tools/fuse_features.py $OFFLINE && \
    $PY tools/make_superpoints.py $OFFLINE && $PY benchmarks/bench_online_fusion.py --device cuda --repeats 3 \
    --out '$out/online_fusion.json'"
true
