"""`python -m ftlab …` is `python main.py …` (bench runs each measurement this way, in its own process)."""
import sys

from ftlab.cli import main

sys.exit(main())
