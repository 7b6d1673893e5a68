"""Built-in slicer profiles of `sculpt station` (PrusaSlicer --load files)."""
