"""ddjax.learning."""
