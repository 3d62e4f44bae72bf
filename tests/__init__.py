"""The test suite: unit/ (fast, no network), integration/ (real brokers and servers on loopback), e2e/."""
