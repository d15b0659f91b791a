"""Who is calling and what they may do: API keys, JWTs, the principal they resolve to, the one authorization
decision, and rate limits. Transport-free: the HTTP layer reads the Authorization header and calls these."""
