"""Stylize stage: picture in, glossy-silicone-looking RGBA picture of the subject out."""
