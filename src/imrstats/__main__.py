import sys

from imrstats.cli import main

sys.exit(main())
