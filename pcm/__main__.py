"""``python -m pcm`` runs the command line."""

import sys

from pcm.cli import main

sys.exit(main())
