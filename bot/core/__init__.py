"""Types and helpers every feature shares; nothing here imports another project module."""
