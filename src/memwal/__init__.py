"""memwal: a local-first memory index whose every write goes through a durable queue.

Data flows one way: discover → chunk → diff → embed → enqueue → commit → search.
"""

__version__ = "0.1.0"
