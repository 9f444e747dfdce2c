"""`python -m ffrtmp_cli`: the same as the `ffrtmp` command."""

import sys

from .main import main

sys.exit(main())
