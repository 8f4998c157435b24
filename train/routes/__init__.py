"""The train service's HTTP API, one blueprint per concern."""
