"""The HTTP API: routes per noun under :mod:`.routes`, and what they share.

- :mod:`.deps`: the app's state, sessions, admin auth, path types;
- :mod:`.errors`: the protocol's error body and the exception handlers;
- :mod:`.middleware`: body limits and strict JSON;
- :mod:`.faults`: database outages answered 503.

Only the app factory (:mod:`software_dna.server.app`) imports the routers.
"""
