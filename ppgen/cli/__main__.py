"""``python -m ppgen.cli``: the ``ppgen`` command."""

from ppgen.cli import main

raise SystemExit(main())
