"""`python -m bertsecrets`: the same as the `bertsecrets` command."""

import sys

from bertsecrets.cli import main

sys.exit(main())
