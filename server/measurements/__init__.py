"""The agents' measurements of a hardware target: its profiling work units and their leases,
LUT predictions from the stored table and the upload dispatch, the closed loop (a front's
subnets measured end to end), tables transferred from another target, and drift probes that
recalibrate a table to the host's speed.
"""
