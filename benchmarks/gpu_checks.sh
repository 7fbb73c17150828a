#!/usr/bin/env bash
# One prepared GPU session: kernel tests on CUDA (no interpreter), then the op benchmarks and a training step of
# the nuScenes camera detector (LSS, 6 x 256 x 704, batch 4: peak memory, Triton vs twin bev_pool) on the GPU.
# Needs torch with CUDA, triton, and pc_kd importable (pip install -e . or PYTHONPATH=.).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
python -m pytest -x -q -p no:cacheprovider tests/test_backproject.py tests/test_bev_pool.py tests/test_scatter.py \
    2>&1 | tee "$out/tests.log"
cd benchmarks
python bench_backproject.py --device cuda --repeats 3 --json "../$out/backproject.json" 2>&1 | tee "../$out/bench.log"
python bench_bev_pool.py --device cuda --repeats 10 --json "../$out/bev_pool.json" 2>&1 | tee -a "../$out/bench.log"
python bench_voxel_scatter.py --device cuda --repeats 10 --json "../$out/voxel_scatter.json" 2>&1 \
    | tee -a "../$out/bench.log"
python bench_lss_step.py --device cuda --batch 4 --repeats 3 --json "../$out/lss_step.json" 2>&1 \
    | tee -a "../$out/bench.log"
python bench_bev_distill.py --device cuda --boxes 200 --batch 4 --repeats 5 --step --json "../$out/bev_distill.json" \
    2>&1 | tee -a "../$out/bench.log"
