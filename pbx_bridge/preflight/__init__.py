"""The preflight: :mod:`.snapshot` gathers, one module per requirement judges (:mod:`.checks`
registers them), :mod:`.render` shows."""
