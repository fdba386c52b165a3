"""Test doubles: a synthetic engine and helpers that run a real server in a child process.

They live with the tests, not in the product: ``backend`` never imports them. A server child picks the
synthetic engine through ``MUNET_ENGINE=tests.doubles.fake_engine:FakeEngine`` (see ``processes.child_env``).
"""
