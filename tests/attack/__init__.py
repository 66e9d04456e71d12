"""The attack suite: seeded hostile inputs, signals and races against every ``edgekit`` command.

Generators (one module per class) make :class:`~tests.attack.case.Case` lists from a seed; the
fork server (:mod:`tests.attack.server`) imports edgekit and its native libraries once and runs
each case's CLI in a forked child; :mod:`tests.attack.judge` classifies what happened (crash,
internal error, clean error, success, lost user files, leftovers). ``tests/test_attack_sample.py``
runs a seeded sample in CI; ``python -m benchmarks.published.attack`` runs the full set.
"""
