"""``stageless demo``: the whole story on loopback (a shop, its users, the proxy, a rollout)."""
