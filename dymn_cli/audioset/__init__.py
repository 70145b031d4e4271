"""The AudioSet vocabulary: the 527 classes the models score and the ontology above them (data/)."""
