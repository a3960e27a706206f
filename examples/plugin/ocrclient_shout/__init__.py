"""ocrclient-shout: a worked ocrclient plugin (see docs/plugins.md)."""
