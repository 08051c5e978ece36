"""ddjax.session."""
