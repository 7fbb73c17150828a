#!/usr/bin/env bash
# Wheels that benchmarks/gpu_checks.sh needs on a GPU machine that has torch, triton and numpy but cannot
# download: pc_kd's pure-Python dependencies and spconv-cu126 + cumm-cu126 for Python 3.12, in two folders of
# under 60 MB each (spconv's 70 MB wheel split across them), for machines that take a limited upload per call:
#   bash benchmarks/gpu_wheels.sh gpu_wheels       # here, with network access (gpu_wheels/ is git-ignored)
# then two calls on the GPU machine while it stays up (its /tmp survives between them):
#   carry gpu_wheels/part1:  mkdir -p /tmp/gw && cp -r gpu_wheels/part1 /tmp/gw/
#   carry gpu_wheels/part2:  cp -r gpu_wheels/part2 /tmp/gw/ && bash benchmarks/gpu_wheels.sh --install /tmp/gw
#                            export PYTHONPATH=/tmp/site; bash benchmarks/gpu_checks.sh
set -euo pipefail
if [[ ${1:-} == --install ]]; then
    dir=${2:?usage: gpu_wheels.sh --install DIR}
    whl=spconv_cu126-2.3.8-cp312-cp312-manylinux_2_28_x86_64.whl
    cat "$dir"/part1/"$whl".* "$dir"/part2/"$whl".* > "/tmp/$whl"
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$dir"/part1/*.whl "/tmp/$whl"
    exit 0
fi
dir=${1:?usage: gpu_wheels.sh DIR}
mkdir -p "$dir/part1" "$dir/part2" "$dir/download"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$dir/download" \
    mmengine==0.10.7 addict yapf termcolor rich markdown-it-py mdurl pygments platformdirs tqdm pyyaml \
    pyquaternion spconv-cu126==2.3.8 cumm-cu126==0.8.2 pccm ccimport pybind11 fire lark ninja portalocker
for whl in "$dir"/download/*.whl; do
    case $(basename "$whl") in
        spconv_cu126*) split -b 25M -d -a 1 "$whl" "$dir/part2/$(basename "$whl")." ;;
        *) cp "$whl" "$dir/part1/" ;;
    esac
done
mv "$dir"/part2/spconv_cu126*.whl.0 "$dir/part1/"  # part1: the small wheels, cumm and spconv's first 25 MB
rm -rf "$dir/download"
du -sh "$dir"/part1 "$dir"/part2
