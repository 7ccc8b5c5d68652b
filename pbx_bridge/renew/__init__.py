"""``renew-hook``'s domain: the certbot lineage (:mod:`.lineage`) and the certificate Asterisk
serves (:mod:`.served`)."""
