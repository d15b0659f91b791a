"""The command API: validates and authorizes writes, publishes commands, answers 202 with a token."""
