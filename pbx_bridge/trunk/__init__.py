"""The trunk's domain: the trunk this PBX's config describes (:mod:`.local`), compared with
Amazon's."""
