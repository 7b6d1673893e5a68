"""``sculpt station``: the reference consumer of ``sculpt.molds.v1`` for a factory station.

jobs.py     one MoldReady -> one verified job folder (download, verify, slice, rename)
slicer.py   PrusaSlicer CLI with a named profile (``profiles/*.ini``)
app.py      FastStream wiring: read_committed consumer, StationJob events + offset in
            one Kafka transaction, after the folder exists
"""
