"""Call routing at call time: the AGI protocol, the process AGI and FastAGI sessions, the
routes they read, and whether Asterisk's user can read them (:mod:`.access`)."""
