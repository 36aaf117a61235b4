"""The service proxy (internal): cluster IPs and node ports in the kernel."""
