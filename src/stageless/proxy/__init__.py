"""The data plane: an asyncio reverse proxy (stageless proxy)."""
