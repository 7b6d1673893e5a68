"""AI backends: the diffusion stylizer and the TripoSR-compatible reconstructor.

Importing this package costs nothing: torch, diffusers and transformers are imported only by
the modules that need them (``diffusion``, ``triposr``), which ``backends`` loads on demand when
the settings pick an AI backend. Weights are never downloaded: every model loads from a local
folder that the operator provides (see ``docs/models.md``).
"""
