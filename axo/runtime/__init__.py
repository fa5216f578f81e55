"""Running workflows on Thespian actors: the facade, the actors, and the host."""
