"""The command line: Hydra entry points, checks that run before Hydra, config validation.

Each user command ``python -m lsx.<command>`` is a two-line module at the top of the package that
calls ``lsx.cli.<command>.cli``; everything it does lives here. Imports run one way: the numerical
core (``lsx.landscape``) ← jobs and training ← this package.
"""
