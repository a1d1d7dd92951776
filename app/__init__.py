"""SuperMega Bank Customer Account API (read-only JSON over HTTP)."""
