"""Running builds: model resolution, the precision/threads policy, sessions and the detector."""
