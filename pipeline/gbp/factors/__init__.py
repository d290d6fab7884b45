"""Factor families: each knows its energy, its linearisation and its messages."""
