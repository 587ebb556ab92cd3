import sys

from vs_superres.cli.app import main

sys.exit(main())
