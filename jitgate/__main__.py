import sys

from jitgate.cli import main

sys.exit(main())
