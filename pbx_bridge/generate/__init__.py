"""The Amazon trunk's Asterisk config: rendered, planned against the files, written in a
transaction (backup, reload, verify, roll back)."""
