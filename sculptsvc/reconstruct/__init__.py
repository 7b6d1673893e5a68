"""Reconstruct stage: stylized picture in, coloured closed mesh out."""
