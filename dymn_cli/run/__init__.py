"""A labelling run: which inputs (paths, walks, lists, URIs), shards, run options, the runner."""
