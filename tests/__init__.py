"""The test suite (a package so ``tests.doubles`` can be imported from the repository root)."""
