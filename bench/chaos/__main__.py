import sys

from bench.chaos._cli import main

sys.exit(main())
