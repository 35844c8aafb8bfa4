import sys

from mamllib.cli import main

sys.exit(main())
