#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun:
#   tools/dist_train.sh CONFIG NUM_GPUS [train.py args...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 tools/dist_train.sh CONFIG 8
# Runs the Python of the active environment (or $PYTHON).
set -euo pipefail
usage="usage: tools/dist_train.sh CONFIG NUM_GPUS [tools/train.py options...]
  e.g. tools/dist_train.sh configs/supervised/supervised_centerpoint-voxel_none_nuscenes.py 8 --resume auto
  multi-node: NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 [PORT=29500] tools/dist_train.sh CONFIG 8"
if [[ $# -lt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
    echo "$usage" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "tools/dist_train.sh: NUM_GPUS must be a positive integer, got '$GPUS'" >&2
    echo "$usage" >&2
    exit 2
fi
PYTHON=${PYTHON:-$(command -v python || command -v python3 || true)}
if [[ -z "$PYTHON" ]]; then
    echo "tools/dist_train.sh: no python on PATH; activate the environment pc_kd is installed in, or set PYTHON" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
cd "$(dirname "$0")/.."
exec "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" tools/train.py "$CONFIG" --launcher pytorch "$@"
