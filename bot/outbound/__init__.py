"""Messages the product sends on its own: SMS (and their record)."""
