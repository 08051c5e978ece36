"""ddjax.io."""
