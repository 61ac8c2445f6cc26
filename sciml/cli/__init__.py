"""The `sciml` command line."""
