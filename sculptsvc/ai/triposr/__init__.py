"""A TripoSR-compatible image-to-3D reconstructor, written from the published architecture.

    config.py         config.yaml -> typed config (class paths checked, never imported)
    model.py          the network (names match the official checkpoint's state-dict keys)
    weights.py        checkpoint loading (model.ckpt / model.safetensors) and the manifest
    isosurface.py     density grid -> marching cubes -> vertex colours
    preprocess.py     stylized RGBA -> the square, grey-backed conditioning image
    reconstructor.py  ``TripoSRReconstructor``: the ``Reconstructor`` seam

Importing this package imports torch.
"""

from sculptsvc.ai.triposr.reconstructor import TripoSRParams, TripoSRReconstructor

__all__ = ["TripoSRParams", "TripoSRReconstructor"]
