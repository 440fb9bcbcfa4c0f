"""Fine-tune a transformer encoder for text classification: `python main.py --help`."""
import sys

from ftlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
