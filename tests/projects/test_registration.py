"""The core stays the method: `import pixelclip` registers none of the projects' components, the
projects' packages register them, and no module of pixelclip/ imports a project (Detectron2's
projects/ convention: a project imports the core, never the reverse)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import sys
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

def registered():
    from pixelclip.data import MAPPER_REGISTRY
    return ["ZeroShotMaskClassifier" in META_ARCH_REGISTRY, "mask_classification" in MAPPER_REGISTRY,
            "PixelCLIPFCCLIPBackbone" in BACKBONE_REGISTRY]

import pixelclip
print("core", registered(), "PixelCLIP" in META_ARCH_REGISTRY,
      sorted(m for m in sys.modules if m.startswith("pixelclip_")))
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import pixelclip_maskcls
print("maskcls", registered())
import pixelclip_fcclip
print("fcclip", registered())
"""


def test_import_pixelclip_registers_no_project_component():
    run = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "projects" / "MaskClassification"),
                          str(ROOT / "projects" / "FC-CLIP")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines == ["core [False, False, False] True []",
                     "maskcls [True, True, False]",
                     "fcclip [True, True, True]"]


def test_no_module_of_the_core_imports_a_project():
    imports = re.compile(r"^\s*(?:from|import)\s+(pixelclip_\w+|projects\b)", re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "pixelclip").rglob("*.py"))
                 if imports.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
