"""`python -m oddity`: the `oddity` command (`oddity.cli.main`)."""
import sys

from oddity.cli import main

sys.exit(main())
