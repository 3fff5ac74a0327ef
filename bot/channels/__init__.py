"""The member-facing channels (LINE, the website chat) and the guard they share.

``guard`` is plain Python; the channel modules import Rasa and are loaded by the rasa
server from ``credentials.yml``.
"""
