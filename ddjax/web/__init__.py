"""The rating page of ``ddjax serve``: plain HTML, CSS and JS, no build step."""
