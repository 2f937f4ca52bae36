"""``python -m sessiond``: the ``sessiond`` command, for callers that know an interpreter, not a PATH."""

from sessiond.cli import main

raise SystemExit(main())
