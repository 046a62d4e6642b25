"""The web dashboard (``/ui``): pages over the same queries as the REST API (docs/dashboard.md)."""
