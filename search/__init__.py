"""Architecture search over the supernet: evaluators, constrained evolution, NSGA-II, Pareto
fronts and hypervolume, an accuracy predictor, and a resumable JSON state.

Entry point: :func:`search.runner.run_search` (see docs/search.md).
"""
