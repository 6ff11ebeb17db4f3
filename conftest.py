"""Project-wide test configuration: the plugin itself comes from its pytest11 entry point."""

pytest_plugins = ["pytester"]
