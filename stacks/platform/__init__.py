"""Constructs of the platform stack (azurerm): one module per concern."""
