"""ddjax.raters."""
