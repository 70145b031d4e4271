"""Running the networks: the decode stage (worker processes), the streaming pipeline, the engine, Ray."""
