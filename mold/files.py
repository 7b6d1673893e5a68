"""The names of the files a mold is delivered as (``MoldResult.files()``).

The service's artifact table (``sculptsvc/artifacts.py``) takes the mold's names from here.
"""

HALF_A = "mold_a.stl"
HALF_B = "mold_b.stl"
THREE_MF = "mold.3mf"
REPORT = "mold.json"
