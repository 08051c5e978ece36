"""ddjax.cli."""
