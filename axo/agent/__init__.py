"""One agent's work: packing its context and running its turn."""
