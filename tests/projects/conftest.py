"""The projects' packages are imported without installing them, as their train_net.py does it: each
project's folder goes on sys.path (pixelclip_maskcls, pixelclip_fcclip, pixelclip_san)."""
import sys
from pathlib import Path

PROJECTS = Path(__file__).resolve().parents[2] / "projects"

for _folder in ("MaskClassification", "FC-CLIP", "SAN"):
    if str(PROJECTS / _folder) not in sys.path:
        sys.path.insert(0, str(PROJECTS / _folder))
