"""The Exec Sandbox page's server: the built page, its runtime config, and a health path."""
