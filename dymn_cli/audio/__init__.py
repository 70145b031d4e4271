"""Audio in: decoding backends (libsndfile, PyAV), resampling, the window grid, inputs named by URI."""
