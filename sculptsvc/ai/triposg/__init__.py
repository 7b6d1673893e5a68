"""A TripoSG image-to-3D reconstructor, written from the published architecture.

    config.py         the release folder's model_index.json and part configs, as typed data
    model.py          DiT flow transformer, SDF VAE, (DINOv2 from ``sculptsvc.ai.vit``)
    flow.py           rectified-flow sampling with classifier-free guidance, seeded
    extract.py        coarse-to-fine SDF grid query -> marching cubes (no CUDA extension)
    preprocess.py     subject framing (our mask, not RMBG) -> DINOv2 pixel values
    weights.py        folder checks and loading (safetensors / weights_only), the manifest
    reconstructor.py  ``TripoSGReconstructor``: the ``Reconstructor`` seam

Importing this package imports torch.
"""

from sculptsvc.ai.triposg.reconstructor import TripoSGParams, TripoSGReconstructor

__all__ = ["TripoSGParams", "TripoSGReconstructor"]
