"""ddjax.core."""
