"""Run ddvideo from a checkout: `python cli.py image in.jpg out.png` (same as the installed `ddvideo`)."""

import sys

from ddvideo.cli import main

if __name__ == "__main__":
    sys.exit(main())
