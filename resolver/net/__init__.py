"""Talking to upstream servers: the contract the engine sees (:mod:`.contract`) and its
UDP/TCP implementation (:mod:`.transport`).  Imports only the wire format."""
