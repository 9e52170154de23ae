"""Development-only code: the Tekmetric API emulator, the Google Sheets stand-in and the demo.

Not part of the shipped package (``plugins/datasync``) and not in the production image: tests,
benchmarks, ``make demo`` and compose's dev services put this folder's parent on ``sys.path``.
"""
