"""Module references that are not submodules."""
from torch import nn


def hold_reference(owner: nn.Module, name: str, module: nn.Module) -> None:
    """``owner.<name> = module`` without registering ``module`` as a submodule of ``owner``.

    For a module whose parameters have another registered owner (the frozen CLIP text tower is owned by
    the backbone's ``clip_model``): it then appears once in ``state_dict()``, ``parameters()`` and DDP's
    buffers, under its owner's names. ``.to()``, ``.double()`` and DDP reach its tensors through the owner
    (parameters are converted in place, so the reference sees them too).
    """
    if name in owner._modules:
        del owner._modules[name]
    object.__setattr__(owner, name, module)
