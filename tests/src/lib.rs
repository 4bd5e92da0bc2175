//! Shared harness for the multi-process and real-peer tests in `tests/tests/`.
