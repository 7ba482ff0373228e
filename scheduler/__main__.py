"""``python -m scheduler ...``: the command-line interface."""

from scheduler.cli import main

raise SystemExit(main())
