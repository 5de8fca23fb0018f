"""Bundled configuration, shipped as package data and read through ``importlib.resources``."""
