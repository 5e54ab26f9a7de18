"""The `fornet` command and its subcommands (the top layer: may import every package)."""
