"""Stand-alone runners that a ``command`` backend can call (see ``profilers.backends.CommandBackend``)."""
