"""hwnas's Hydra configs. A wheel installs this folder as the package ``hwnas_configs`` (see
pyproject.toml) so the entry points find it however hwnas is installed; nas.cli.CONFIG_DIR says
which copy is in use."""
