"""Larder: a self-hosted, real-time GraphQL sync backend for recipes on MongoDB."""

__version__ = "0.1.0"
