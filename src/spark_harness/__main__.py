"""``python -m spark_harness`` is the ``spark-harness`` command."""

import sys

from spark_harness.cli import main

sys.exit(main())
