"""Development tools: test helpers, recorded fixtures and the FLOP counter."""
