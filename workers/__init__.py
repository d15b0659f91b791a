"""Workers: the applier (commands into DeepLake, domain events out) and the projector (events into SQL)."""
