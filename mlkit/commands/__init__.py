"""One module per `mlkit` command group; mlkit.cli wires them into one app."""
