"""``test-call``'s domain: :mod:`.call` places and watches a call over AMI, :mod:`.observation`
holds what was seen, :mod:`.diagnose` judges it."""
