#!/usr/bin/env python
"""Does a CAT-Seg model hold the exported CLIP? Compares tensors key by key; exit 1 listing every problem.

    python projects/CAT-Seg/verify_catseg.py --model-state catseg_loaded_state.pth --export pixelclip_vitb_catseg.pth

``--model-state``: the state dict of CAT-Seg's model *after* its checkpointer loaded MODEL.WEIGHTS
(``torch.save(model.state_dict(), ...)``; a Detectron2 checkpoint ``{"model": ...}`` saved before any
training step works too). Inside CAT-Seg's train_net.py the same check is
``pixelclip_catseg.verify.assert_model_holds_export(model, cfg.MODEL.WEIGHTS)`` (README). Needs only torch.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from pixelclip_catseg.layout import CATSEG_CLIP_PREFIX  # noqa: E402
from pixelclip_catseg.verify import CATSegWeightsError, assert_model_holds_export  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-state", required=True, help="CAT-Seg's state dict after loading (or its checkpoint)")
    parser.add_argument("--export", required=True, help="the file export_catseg.py wrote")
    parser.add_argument("--prefix", default=CATSEG_CLIP_PREFIX, help="where the CLIP lives in the model")
    parser.add_argument("--atol", type=float, default=0.0, help="largest accepted |difference| per element")
    args = parser.parse_args(argv)
    try:
        if not os.path.isfile(args.model_state):
            raise CATSegWeightsError(f"model state file not found: {args.model_state}")
        state = torch.load(args.model_state, map_location="cpu", weights_only=True)
        state = state["model"] if isinstance(state.get("model"), dict) else state
        report = assert_model_holds_export(state, args.export, args.prefix, args.atol)
    except CATSegWeightsError as e:
        print(f"[verify_catseg] {e}", file=sys.stderr)
        return 1
    print(f"[verify_catseg] OK: {report.checked} tensors under '{report.prefix}' equal the export "
          f"(max |diff| {report.max_abs_diff:.3g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
