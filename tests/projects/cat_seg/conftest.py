"""projects/CAT-Seg goes on sys.path, as its tools put it (pixelclip_catseg is not installed)."""
import sys
from pathlib import Path

CATSEG_PROJECT = Path(__file__).resolve().parents[3] / "projects" / "CAT-Seg"
if str(CATSEG_PROJECT) not in sys.path:
    sys.path.insert(0, str(CATSEG_PROJECT))
