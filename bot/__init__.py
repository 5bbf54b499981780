"""Channels and the conversation service: wire formats in, engine steps, messages out."""
