"""Search jobs: the queue in the ``searches`` table (claiming, re-queueing, owned writes), the
worker that runs a job and its heartbeat, the parsed job configuration, the stored results and
the score cache across searches, the Pareto fronts served from them, and the states a job
goes through (``SearchStatus``).
"""
