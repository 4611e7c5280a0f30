"""Command line: one Typer app with a sub-app per command group."""
