"""Tests against real broker and search server processes."""
