"""Video analysis: a long recording -> face track -> spotting signal -> intervals -> recognition -> timeline."""
