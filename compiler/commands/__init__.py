"""One module per ``flowc`` sub-command, each exposing a click command (see cli.COMMANDS)."""
