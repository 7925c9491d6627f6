"""Deployment: the policy as a SavedModel and as a LiteRT model."""
