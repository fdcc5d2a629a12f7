"""The kernel: what every layer may use and nothing of the project's own — the error
tree (`kernel.errors`) and the settings (`kernel.settings`)."""
