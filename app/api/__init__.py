"""The HTTP API: the core job routes, dataset fill, and one module per compatibility profile."""
