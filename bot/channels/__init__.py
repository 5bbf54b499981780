"""Channel adapters: one module per channel, wire format <-> the conversation service."""
