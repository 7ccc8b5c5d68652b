"""The doors to Asterisk: its config files (:mod:`.conf`, the reader; :mod:`.pjsip`, the PJSIP
objects read from them), its CLI (:mod:`.cli`) and its manager interface (:mod:`.ami`)."""
