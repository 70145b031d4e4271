"""Results out: output formats, editor exports (Audacity, Raven), embeddings archives, plots."""
