"""``status``'s domain: :mod:`.gather` looks at the host, Asterisk and Amazon, read-only;
:mod:`.report` holds what it found and says it (text, JSON, Prometheus, Nagios)."""
