#!/usr/bin/env python
"""Merge PixelCLIP's exported image encoder into a SAN checkpoint, then check the written file.

    python projects/SAN/merge_san.py --pixelclip-clip pixelclip_vitb16_open_clip.pt \\
        --san-checkpoint san_vit_b_16.pth --output san_vit_b_16_pixelclip.pth

``--pixelclip-clip``: the open_clip export (``tools/export_clip.py open-clip``), the OpenAI-layout export
(``... openai``) or a PixelCLIP checkpoint (``backbone.clip_model.*``). The image encoder goes into SAN's
``clip_visual_extractor`` / ``clip_rec_head`` (split where the checkpoint splits it); SAN's own
positional embedding is kept (``--positional-embedding pixelclip`` takes the export's); the side adapter,
text tower and background embedding stay. Nothing is written when a key, shape or the text tower does
not fit. The written file is read back and compared tensor by tensor; the report (every key replaced)
goes to ``<output>.report.json``. Errors end with one line, ``[merge_san] <what> — <what to do>``.
Runs with torch alone (this repository's environment or SAN's).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pixelclip_san.checkpoints import read_clip_state_dict, read_san_checkpoint, write_file  # noqa: E402
from pixelclip_san.errors import SanWeightsError  # noqa: E402
from pixelclip_san.merge import merge_into_san  # noqa: E402
from pixelclip_san.verify import POSITIONAL_CHOICES, check_san_holds  # noqa: E402


def merge(args) -> dict:
    clip_sd = read_clip_state_dict(args.pixelclip_clip, args.trust_pickle)
    container, san_sd = read_san_checkpoint(args.san_checkpoint, args.trust_pickle)
    report = merge_into_san(san_sd, clip_sd, args.positional_embedding, args.allow_other_text)
    write_file(container, args.output)
    _, written = read_san_checkpoint(args.output, args.trust_pickle)
    check = check_san_holds(written, clip_sd, args.positional_embedding, text=not args.allow_other_text)
    check.raise_if_bad(args.output)
    summary = {"output": args.output, "san_checkpoint": args.san_checkpoint, "pixelclip_clip": args.pixelclip_clip,
               "first_rec_layer": report.first_rec_layer, "positional_embedding": args.positional_embedding,
               "text_max_abs_difference": report.text_max_abs_difference, "kept": report.kept,
               "check": check.summary(), "replaced": report.replaced}
    with open(args.output + ".report.json", "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pixelclip-clip", required=True,
                        help="exported CLIP (open_clip / OpenAI layout) or PixelCLIP checkpoint")
    parser.add_argument("--san-checkpoint", required=True, help="the SAN checkpoint to merge into")
    parser.add_argument("--output", required=True, help="the merged checkpoint (same container as the input)")
    parser.add_argument("--positional-embedding", choices=POSITIONAL_CHOICES, default="san",
                        help="whose clip_visual_extractor.positional_embedding to keep "
                             "(default: SAN's, which SAN trained)")
    parser.add_argument("--allow-other-text", action="store_true",
                        help="merge even when the text towers differ (the SAN checkpoint was trained on another CLIP)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="read checkpoints that hold Python objects besides tensors by unpickling them in full "
                             "(runs code a crafted file names: only for files whose origin you trust)")
    args = parser.parse_args(argv)
    try:
        summary = merge(args)
    except SanWeightsError as e:
        print(f"[merge_san] {e}", file=sys.stderr)
        return 1
    shown = dict(summary, replaced=f"{len(summary['replaced'])} tensors (listed in {args.output}.report.json)")
    print(json.dumps(shown, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
