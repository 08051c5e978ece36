"""ddjax.sampling."""
