"""The member-facing channels (LINE, the website chat) and the guard they share.

``guard`` is plain Python; the channel modules import Rasa and are loaded by the rasa
server from ``credentials.yml``. ``shared_state`` and ``shared_guard`` keep in Redis what
several rasa servers must share, when ``REDIS_URL`` is set.
"""
