"""`dymn-tag`: the command line, a thin layer over the run and the weights registry."""
