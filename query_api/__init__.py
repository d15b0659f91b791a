"""The query API: serves reads from the projections."""
