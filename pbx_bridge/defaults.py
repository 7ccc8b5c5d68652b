"""Values from Amazon's guide that several commands default to."""

# Amazon's network for SIP signalling and media (configurable: --amazon-cidr).
DEFAULT_AMAZON_CIDR = "3.239.178.128/25"
