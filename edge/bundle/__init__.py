"""``edgekit bundle``: copy verified builds into the Android demo app's assets.

:mod:`edge.bundle.app` finds the app and reads/writes its bundle index; :mod:`edge.bundle.store`
stages, verifies and commits bundles atomically; :mod:`edge.bundle.command` is the thin CLI.
"""
