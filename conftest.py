# pytester drives the plugin end to end in tests/test_plugin.py.
pytest_plugins = ["pytester"]
