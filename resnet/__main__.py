import sys

from resnet.cli import main

sys.exit(main())
