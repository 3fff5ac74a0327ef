"""The organization's published policy: profiles and the answers built from them."""
