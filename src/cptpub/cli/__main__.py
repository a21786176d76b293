import sys

from cptpub.cli import main

sys.exit(main())
