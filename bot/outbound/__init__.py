"""Messages the product sends on its own: SMS senders, and the record of each message."""
