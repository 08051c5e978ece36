"""ddjax.rescore."""
