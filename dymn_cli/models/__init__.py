"""The networks and what they need: the DyMN and MN families (`build`), the log-mel front end, the
weights registry and ensembles. Imported lazily by module: `frontend_config` is free of torch."""
