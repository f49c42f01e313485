#!/usr/bin/env bash
# GPU readiness check of PixelCLIP on one GPU, with random ViT-B/16 weights and no internet (about 3-5 minutes;
# stopped at 8): training steps in fp32 / TF32 / AMP fp16 / bf16 (finite, close to fp32) with throughput and
# peak memory beside the release-style path, tools/train_net.py --num-gpus 1 with AMP then --eval-only on a
# generated miniature dataset, and a one-process NCCL run (tools/benchmark.py --tasks gpu).
#
#   tools/gpu_check.sh                          # on a GPU machine
#   tools/gpu_check.sh --device cpu --dry-run   # the same code on the tiny CLIP, on CPU, in seconds
#   PYTHON=.venv/bin/python tools/gpu_check.sh --train-batch 32 --iters 5
#
# Exit status 0 when every check passes; otherwise 1 and one line "[gpu_check] ..." on stderr (124: over 8 min).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"
case " $* " in
  *" --dry-run "*) ;;
  *) "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || {
       echo "[gpu_check] no CUDA device visible to PyTorch — run it on a GPU machine, or rehearse with: tools/gpu_check.sh --device cpu --dry-run" >&2
       exit 1
     } ;;
esac
export HF_HUB_OFFLINE=1 PIXELCLIP_TEXT_CACHE=off
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$python" "$root/tools/benchmark.py" --tasks gpu "$@"
