import sys

from tm_service.cli import main

sys.exit(main())
