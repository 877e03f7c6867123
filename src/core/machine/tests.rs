//! Unit tests of every transition and timer of the visitor machine.
