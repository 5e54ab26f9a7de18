"""``python -m fornet <command> ...`` (also what ``torchrun -m fornet train ...`` runs)."""

from fornet.cli.main import main

raise SystemExit(main())
