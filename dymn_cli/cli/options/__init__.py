"""The options of `dymn-tag [PATHS]`, one module per group of help panels."""
